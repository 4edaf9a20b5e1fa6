"""The one Dagster instance a storage root's runs are recorded in (entry-point layer).

``DAGSTER_HOME`` when it is set; otherwise ``<storage root>/dagster_home``, created with the
packaged ``dagster.yaml`` (pools, queued runs). The demo, ``verify``, ``report`` and
``wmtp-assets ui`` (``dagster dev``) all open this one, so what the demo built is what the UI shows.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from wmtp_assets.files.atomic import atomic_write_text
from wmtp_assets.settings import Settings

INSTANCE_FOLDER = "dagster_home"


def instance_home(settings: Settings) -> Path:
    """Where the instance lives; created (with ``dagster.yaml``) when it is the default one."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = (settings.storage_root / INSTANCE_FOLDER).resolve()
    config = home / "dagster.yaml"
    if not config.is_file():
        home.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config, (files("wmtp_assets") / "dagster.yaml").read_text())
    return home


def instance_exists(settings: Settings) -> bool:
    """Whether the instance ``instance_home`` would open is there already (never creates it)."""
    if os.environ.get("DAGSTER_HOME"):
        return True
    return (settings.storage_root / INSTANCE_FOLDER / "dagster.yaml").is_file()
