"""The ``wmtp-assets`` console script: ``demo``, ``verify`` and ``report``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from wmtp_assets.demo.mirror import build_demo_mirror
from wmtp_assets.files.layout import Layout
from wmtp_assets.graph_runs import (
    format_check_table,
    format_table,
    materialize_everything,
    verify_everything,
)
from wmtp_assets.reports import write_inventory_markdown
from wmtp_assets.settings import Settings
from wmtp_assets.validate.inventory import inventory


def _instance() -> dg.DagsterInstance:
    """The persistent instance when DAGSTER_HOME is set, else a throwaway one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def demo(settings: Settings) -> int:
    """Build the demo mirror, materialize everything from it, print a summary; 0 on success."""
    started = time.monotonic()
    layout = Layout(settings.storage_root)
    print(f"building the demo mirror in {layout.demo_mirror} ...", flush=True)
    mirror = build_demo_mirror(layout.demo_mirror)
    demo_settings = settings.model_copy(
        update={"mirror": mirror.root, "tokenizer_sha256": mirror.tokenizer_sha256}
    )
    print("materializing every asset and partition from it ...", flush=True)
    with _instance() as instance:
        run = materialize_everything(demo_settings, instance)
    print(format_table(run.rows))
    elapsed = time.monotonic() - started
    if run.ok:
        print(f"\ndemo OK: {len(run.rows)} materializations in {elapsed:.0f}s")
        return 0
    for name in run.failed_runs:
        print(f"FAILED run: {name}", file=sys.stderr)
    for name in run.failed_checks:
        print(f"FAILED check: {name}", file=sys.stderr)
    return 1


def verify(settings: Settings) -> int:
    """Rerun every check over what is stored; print a table; non-zero if any check failed."""
    with _instance() as instance:
        rows = verify_everything(settings, instance).rows
    if not rows:
        print(f"nothing stored under {settings.storage_root}: no checks to run", file=sys.stderr)
        return 1
    print(format_check_table(rows))
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)} checks passed, {len(failed)} failed")
    return 1 if failed else 0


def report(settings: Settings) -> int:
    """Write docs/asset_inventory.md from what is stored and a fresh run of every check."""
    layout = Layout(settings.storage_root)
    rows = inventory(layout)
    with _instance() as instance:
        checks = verify_everything(settings, instance).rows
    path = write_inventory_markdown(Path("docs") / "asset_inventory.md", layout, rows, checks)
    failed = sum(not c.passed for c in checks)
    print(f"wrote {path}: {len(rows)} files, {len(checks)} checks, {failed} failed")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wmtp-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="build a small local mirror and materialize every asset from it"
    )
    commands.add_parser(
        "verify", help="rerun every asset check over everything stored; non-zero on any failure"
    )
    commands.add_parser(
        "report", help="write docs/asset_inventory.md (files, sizes, SHA256, counts, checks)"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    return {"demo": demo, "verify": verify, "report": report}[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
