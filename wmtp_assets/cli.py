"""The ``wmtp-assets`` console script: ``demo``, ``verify``, ``report`` and ``ui``.

Exit codes: 0 everything passed; 1 a check or a materialization failed; 2 a bad command line
or setting (one line names the variable or file); 3 nothing is stored to verify or report.
Dagster and torch are imported only inside the commands, so ``--help`` answers at once
whatever the environment holds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from wmtp_assets.instance import InstanceError, database_full
from wmtp_assets.settings import ENV_VARS, Settings, SettingsError

if TYPE_CHECKING:
    import dagster as dg

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING_STORED = 0, 1, 2, 3

EPILOG = """\
settings (environment first, then <storage root>/wmtp_settings.json, then the default):
  WMTP_STORAGE_ROOT      root of the storage layout (default ./storage; --storage-root wins)
  WMTP_MIRROR            read upstream files from this local mirror instead of the Hub
  WMTP_TOKENIZER_SHA256  SHA256 every tokenizer.model must have (default: Llama-2's)
  WMTP_MAX_TOKENS        token limit for dataset records (default 2048)
  WMTP_DEVICE            device for forward-pass checks: auto, cuda, mps, cpu (default auto)
  WMTP_LOCK_TIMEOUT      seconds to wait for an artifact another run is writing (default 600)
  DAGSTER_HOME           Dagster instance (default <storage root>/dagster_home)

exit codes: 0 all passed, 1 a check or materialization failed, 2 bad command line or
setting, 3 nothing stored to verify or report
"""


def _instance(settings: Settings) -> dg.DagsterInstance:
    import dagster as dg

    from wmtp_assets.defs.dead_runs import free_slots_of_dead_runs
    from wmtp_assets.instance import (
        check_instance_databases,
        instance_home,
        watch_for_full_databases,
    )

    home = instance_home(settings)
    check_instance_databases(home)
    watch_for_full_databases()
    instance = dg.DagsterInstance.from_config(str(home))
    for run_id in free_slots_of_dead_runs(instance):  # a killed run's pool slots: a rerun waits
        print(f"run {run_id}: its processes are gone; marked failed, pool slots freed")
    return instance


def _log_level(args: argparse.Namespace) -> str:
    return "DEBUG" if args.verbose else "WARNING"


def _print_settings(settings: Settings) -> None:
    for field, var in ENV_VARS.items():
        value = getattr(settings, field)
        print(
            f"  {var:<22} {value if value is not None else '(unset)'}  [{settings.origin(field)}]"
        )


def demo(settings: Settings, args: argparse.Namespace) -> int:
    """Build the demo mirror, record it as the root's settings, materialize everything from
    it into the root's instance, print a summary; 0 on success."""
    from wmtp_assets.demo.mirror import build_demo_mirror
    from wmtp_assets.files.layout import Layout
    from wmtp_assets.graph_runs import materialize_everything
    from wmtp_assets.reports import asset_table
    from wmtp_assets.settings import write_settings_file

    started = time.monotonic()
    layout = Layout(settings.storage_root)
    print(f"building the demo mirror in {layout.demo_mirror} ...", flush=True)
    mirror = build_demo_mirror(layout.demo_mirror)
    write_settings_file(
        settings.storage_root,
        mirror=str(mirror.root.resolve()),
        tokenizer_sha256=mirror.tokenizer_sha256,
    )
    settings = Settings.load(storage_root=args.storage_root)
    print(f"recorded the demo's settings in {settings.settings_file}:")
    _print_settings(settings)
    print("materializing every asset and partition from it ...", flush=True)
    with _instance(settings) as instance:
        run = materialize_everything(settings, instance, _log_level(args))
        home = instance.root_directory
    print(asset_table(run.rows))
    elapsed = time.monotonic() - started
    if not run.ok:
        for name in run.failed_runs:
            print(f"FAILED run: {name}", file=sys.stderr)
        for name in run.failed_checks:
            print(f"FAILED check: {name}", file=sys.stderr)
        return EXIT_FAILED
    print(f"\ndemo OK: {len(run.rows)} materializations in {elapsed:.0f}s, recorded in {home}")
    root = (
        ""
        if settings.origin("storage_root") == "default"
        else f" --storage-root {settings.storage_root}"
    )
    print(
        "next:\n"
        f"  wmtp-assets{root} verify    # rerun every check over what is stored\n"
        f"  wmtp-assets{root} report    # write <storage root>/asset_inventory.md\n"
        f"  wmtp-assets{root} ui        # the Dagster web UI on these runs (dagster dev)"
    )
    return EXIT_OK


def verify(settings: Settings, args: argparse.Namespace) -> int:
    """Rerun every check over what is stored; print a table; non-zero if any check failed."""
    from wmtp_assets.graph_runs import verify_everything
    from wmtp_assets.reports import check_table

    print("settings:")
    _print_settings(settings)
    with _instance(settings) as instance:
        result = verify_everything(
            settings, instance, args.model or None, args.partition or None, _log_level(args)
        )
    if not result.rows:
        print(f"nothing stored under {settings.storage_root}: no checks to run", file=sys.stderr)
        return EXIT_NOTHING_STORED
    print(check_table(result.rows))
    failed = [r for r in result.rows if not r.passed]
    print(f"\n{len(result.rows) - len(failed)} checks passed, {len(failed)} failed")
    return EXIT_FAILED if failed else EXIT_OK


def report(settings: Settings, args: argparse.Namespace) -> int:
    """Write ``asset_inventory.md`` (under the storage root unless ``--output``) from what is
    stored and a fresh run of every check."""
    from wmtp_assets.files.layout import Layout
    from wmtp_assets.graph_runs import verify_everything
    from wmtp_assets.reports import inventory, write_inventory_markdown

    layout = Layout(settings.storage_root)
    rows = inventory(layout)
    with _instance(settings) as instance:
        checks = verify_everything(settings, instance, log_level=_log_level(args)).rows
    if not rows and not checks:
        print(f"nothing stored under {settings.storage_root}: no report", file=sys.stderr)
        return EXIT_NOTHING_STORED
    dest = args.output or settings.storage_root / "asset_inventory.md"
    path = write_inventory_markdown(dest, layout, rows, checks)
    failed = sum(not c.passed for c in checks)
    print(f"wrote {path}: {len(rows)} files, {len(checks)} checks, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK


def ui(settings: Settings, args: argparse.Namespace) -> int:
    """``dagster dev`` on this root's instance, so the UI shows what the demo and headless runs
    recorded; Ctrl-C stops the webserver and the daemon."""
    from wmtp_assets.instance import instance_home

    env = {**os.environ, "DAGSTER_HOME": str(instance_home(settings))}
    env[ENV_VARS["storage_root"]] = str(settings.storage_root.resolve())
    target = [] if {"-m", "-f", "-w", "--workspace"} & set(args.dagster_args) else _CODE_LOCATION
    command = ["dagster", "dev", *target, *args.dagster_args]
    print(f"DAGSTER_HOME={env['DAGSTER_HOME']} {' '.join(command)}", flush=True)
    os.execvpe(command[0], command, env)  # replaces this process: Ctrl-C reaches dagster dev


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmtp-assets",
        description="Prepare and prove the model and dataset artifacts of WMTP research.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--storage-root", type=Path, help="storage root (wins over WMTP_STORAGE_ROOT)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print Dagster's DEBUG log")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo", help="build a small local mirror and materialize every asset from it"
    )
    check = commands.add_parser(
        "verify", help="rerun every asset check over everything stored; non-zero on any failure"
    )
    check.add_argument(
        "--model",
        action="append",
        help="only this model (e.g. micro_mtp); without --partition: no dataset checks",
    )
    check.add_argument(
        "--partition",
        action="append",
        help="only this partition (e.g. mbpp.test); without --model: no model checks",
    )
    out = commands.add_parser(
        "report", help="write asset_inventory.md (files, sizes, SHA256, counts, checks)"
    )
    out.add_argument("--output", type=Path, help="default: <storage root>/asset_inventory.md")
    web = commands.add_parser("ui", help="the Dagster web UI (dagster dev) on this root's runs")
    web.add_argument("dagster_args", nargs=argparse.REMAINDER, help="passed to dagster dev")
    return parser


_CODE_LOCATION = ["-w", str(files("wmtp_assets") / "workspace.yaml")]
"""The packaged workspace (``workspace.yaml`` at the repo root links to it): the location is named
``wmtp_assets`` whichever way the UI is started."""

COMMANDS = {"demo": demo, "verify": verify, "report": report, "ui": ui}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(storage_root=args.storage_root)
    except SettingsError as exc:
        print(f"wmtp-assets: {exc}", file=sys.stderr)
        print(
            "hint: fix or unset the variable or file named above (see wmtp-assets --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](settings, args)
    except InstanceError as exc:
        print(f"wmtp-assets: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("wmtp-assets: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # only a full instance database is ours to name; others propagate
        full = database_full(exc)
        if full is None:
            raise
        print(f"wmtp-assets: {full}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
