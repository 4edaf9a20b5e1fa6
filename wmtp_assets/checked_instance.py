"""The Dagster instance class the packaged ``dagster.yaml`` names (``instance_class``): every
entry point that opens such an instance (``dagster``, ``dg``, ``dagster dev``, ``wmtp-assets``)
has its SQLite files checked first, so an unusable database is one line, not a traceback.

Why here: Dagster's CLIs open the instance before they load our definitions, so a check there
comes too late; ``config_defaults`` is what Dagster calls, with the instance folder, before it
opens any storage. Contract: ``instance.check_instance_databases`` over that folder (not SQLite,
corrupt or truncated, locked beyond ``LOCK_WAIT_S``, on a full disk); its :class:`InstanceError`
ends the process with that one line on stderr and a non-zero exit (``SystemExit``), as a bad
setting does at definitions load; a database that fills up later in the process is one line too
(``name_full_databases_on_exit``). Otherwise this is Dagster's own instance, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import ConfigurableClassData

from wmtp_assets.instance import (
    InstanceError,
    check_instance_databases,
    name_full_databases_on_exit,
)


class CheckedInstance(dg.DagsterInstance):
    """``DagsterInstance``, opened only once its SQLite files are usable (module docstring)."""

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}  # no settings of its own

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        try:
            check_instance_databases(Path(base_dir))
        except InstanceError as exc:
            raise SystemExit(f"wmtp-assets: {exc}") from None
        name_full_databases_on_exit()
        return InstanceRef.config_defaults(base_dir)
