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
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from wmtp_assets.instance import InstanceError, database_full
from wmtp_assets.settings import ENV_VARS, Settings, SettingsError

if TYPE_CHECKING:
    import dagster as dg

    from wmtp_assets.graph_runs import CheckRow

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING_STORED = 0, 1, 2, 3

EPILOG = """\
settings (environment first, then <storage root>/wmtp_settings.json, then the default):
  WMTP_STORAGE_ROOT      root of the storage layout (default ./storage; --storage-root wins)
  WMTP_MIRROR            read upstream files from this local mirror instead of the Hub
  WMTP_TOKENIZER_SHA256  SHA256 every tokenizer.model must have (default: Llama-2's)
  WMTP_MAX_TOKENS        token limit for dataset records (default 2048)
  WMTP_DEVICE            device for forward-pass checks: auto, cuda, mps, cpu (default auto)
  WMTP_LOCK_TIMEOUT      seconds to wait for a held artifact or download slot (default 600)
  WMTP_SIGNING_KEY       PEM EC P-256 private key outside the root: sign what is published
  WMTP_VERIFY_KEY        PEM public key: verify fails on a missing, stale or invalid signature
  WMTP_SIGNED_STATE      signed-state record catching rollbacks (default: beside the key)
                         (these three: environment only; default: the demo's keys for the root)
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


class UsageError(ValueError):
    """A bad command line; the message is the one line printed."""


def _model_names(given: Sequence[str] | None) -> list[str] | None:
    """``--model`` values as asset names; the storage folder name (``micro-mtp``) is accepted
    too, since that is the name a user sees under ``models_v2/``."""
    from wmtp_assets.files.layout import MODEL_FOLDERS

    if given is None:
        return None
    by_folder = {folder: name for name, folder in MODEL_FOLDERS.items()}
    unknown = [m for m in given if m not in MODEL_FOLDERS and m not in by_folder]
    if unknown:
        raise UsageError(
            f"--model {unknown[0]}: unknown model; expected one of {', '.join(MODEL_FOLDERS)} "
            f"(or its storage folder: {', '.join(by_folder)})"
        )
    return [by_folder.get(m, m) for m in given]


def _partition_keys(given: Sequence[str] | None) -> list[str] | None:
    from wmtp_assets.data.partitions import PARTITION_KEYS

    unknown = [p for p in given or () if p not in PARTITION_KEYS]
    if unknown:
        raise UsageError(
            f"--partition {unknown[0]}: unknown partition; expected one of "
            f"{', '.join(PARTITION_KEYS)}"
        )
    return list(given) if given is not None else None


def _nothing_recorded(settings: Settings) -> bool:
    """True when the root stores no artifact and has no Dagster instance to read: then there
    is nothing to verify, and opening the instance would only create one there."""
    from wmtp_assets.files.layout import Layout
    from wmtp_assets.instance import instance_exists
    from wmtp_assets.validate.stored import stored_models, stored_partitions

    layout = Layout(settings.storage_root)
    return not (stored_models(layout) or stored_partitions(layout) or instance_exists(settings))


def _checked(rows: Sequence[CheckRow]) -> str:
    """What a set of check results covered, and how it went, in one line."""
    from wmtp_assets.validate.outcome import counted

    failed = sum(not r.passed for r in rows)
    assets = counted(len({r.asset for r in rows}), "asset")
    partitions = counted(len({r.partition for r in rows if r.partition}), "partition")
    files = counted(sum(r.files for r in rows), "file")
    return (
        f"{counted(len(rows), 'check')} over {assets}, {partitions} and {files}: "
        f"{len(rows) - failed} passed, {failed} failed"
    )


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
    from wmtp_assets.demo.signing_keys import make_demo_keys
    from wmtp_assets.files.layout import Layout
    from wmtp_assets.graph_runs import materialize_everything
    from wmtp_assets.progress import Progress
    from wmtp_assets.reports import asset_table
    from wmtp_assets.settings import config_home, write_settings_file
    from wmtp_assets.validate.outcome import counted

    layout = Layout(settings.storage_root)
    with Progress() as progress:
        progress.working_on("building the demo mirror")
        print(f"building the demo mirror in {layout.demo_mirror} ...", flush=True)
        mirror = build_demo_mirror(layout.demo_mirror)
        write_settings_file(
            settings.storage_root,
            mirror=str(mirror.root.resolve()),
            tokenizer_sha256=mirror.tokenizer_sha256,
        )
        if settings.signing_key is None:
            keys = make_demo_keys(settings.storage_root, config_home())
            print(f"signing with the demo's key pair, kept outside the root in {keys.folder}")
        settings = Settings.load(storage_root=args.storage_root)
        print(f"recorded the demo's settings in {settings.settings_file}:")
        _print_settings(settings)
        print("materializing every asset and partition from it ...", flush=True)
        progress.working_on("opening the Dagster instance")
        with _instance(settings) as instance:
            run = materialize_everything(settings, instance, progress, args.verbose)
            home = instance.root_directory
    elapsed = progress.elapsed_s
    print(asset_table(run.rows))
    if not run.ok:
        for name in run.failed_runs:
            print(f"FAILED run: {name}", file=sys.stderr)
        for name in run.failed_checks:
            print(f"FAILED check: {name}", file=sys.stderr)
        return EXIT_FAILED
    assets = counted(len({r.asset for r in run.rows}), "asset")
    partitions = counted(len({r.partition for r in run.rows if r.partition}), "partition")
    print(
        f"\ndemo OK in {elapsed:.0f}s: {counted(len(run.rows), 'materialization')} of {assets} "
        f"over {partitions}, {counted(sum(r.files for r in run.rows), 'file')} written; "
        f"{counted(run.checks_passed, 'check')} passed, 0 failed; recorded in {home}"
    )
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
    """Rerun the checks of everything stored (or of the ``--model``/``--partition`` named) and
    the signatures; print a table; non-zero if any check failed or a signature did not verify."""
    from wmtp_assets.files.signing import SigningError
    from wmtp_assets.graph_runs import verify_everything
    from wmtp_assets.progress import Progress
    from wmtp_assets.reports import check_table
    from wmtp_assets.validate.signatures import SIGNATURE_CHECK as SIGNED
    from wmtp_assets.validate.signatures import signatures_line

    models, partitions = _model_names(args.model), _partition_keys(args.partition)
    print("settings:")
    _print_settings(settings)
    scope = " ".join([*(models or []), *(partitions or [])]) or "everything"
    if _nothing_recorded(settings):
        print(f"nothing stored under {settings.storage_root}: no checks to run", file=sys.stderr)
        return EXIT_NOTHING_STORED
    print(f"checking {scope} ...", flush=True)
    try:
        with Progress() as progress, _instance(settings) as instance:
            result = verify_everything(
                settings, instance, models, partitions, progress, verbose=args.verbose
            )
    except SigningError as exc:
        print(f"wmtp-assets: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not result.rows:
        print(
            f"nothing stored under {settings.storage_root} for {scope}: no checks to run",
            file=sys.stderr,
        )
        return EXIT_NOTHING_STORED
    print(check_table(result.rows))
    print("\n" + signatures_line(settings, [r.passed for r in result.rows if r.check == SIGNED]))
    print(f"verified {scope}: {_checked(result.rows)}")
    return EXIT_FAILED if any(not r.passed for r in result.rows) else EXIT_OK


def report(settings: Settings, args: argparse.Namespace) -> int:
    """Write ``asset_inventory.md`` (under the storage root unless ``--output``) from what is
    stored and a fresh run of every check."""
    from wmtp_assets.files.layout import Layout
    from wmtp_assets.graph_runs import verify_everything
    from wmtp_assets.progress import Progress
    from wmtp_assets.reports import inventory, write_inventory_markdown
    from wmtp_assets.validate.outcome import counted

    layout = Layout(settings.storage_root)
    if _nothing_recorded(settings):
        print(f"nothing stored under {settings.storage_root}: no report", file=sys.stderr)
        return EXIT_NOTHING_STORED
    rows = inventory(layout)
    print("checking everything stored ...", flush=True)
    with Progress() as progress, _instance(settings) as instance:
        checks = verify_everything(settings, instance, progress=progress, verbose=args.verbose)
    if not rows and not checks.rows:
        print(f"nothing stored under {settings.storage_root}: no report", file=sys.stderr)
        return EXIT_NOTHING_STORED
    dest = args.output or settings.storage_root / "asset_inventory.md"
    path = write_inventory_markdown(dest, layout, rows, checks.rows)
    artifacts = counted(len({r.artifact for r in rows}), "artifact")
    print(
        f"wrote {path}: {counted(len(rows), 'file')} of {artifacts} inventoried; "
        f"{_checked(checks.rows)}"
    )
    return EXIT_FAILED if any(not c.passed for c in checks.rows) else EXIT_OK


def ui(settings: Settings, args: argparse.Namespace) -> int:
    """``dagster dev`` on this root's instance, so the UI shows what the demo and headless runs
    recorded; Ctrl-C or SIGTERM stops it and every process it started (``dev_server``)."""
    from wmtp_assets.dev_server import run_supervised
    from wmtp_assets.instance import instance_home

    env = {**os.environ, "DAGSTER_HOME": str(instance_home(settings))}
    env[ENV_VARS["storage_root"]] = str(settings.storage_root.resolve())
    target = [] if {"-m", "-f", "-w", "--workspace"} & set(args.dagster_args) else _CODE_LOCATION
    command = ["dagster", "dev", *target, *args.dagster_args]
    print(f"DAGSTER_HOME={env['DAGSTER_HOME']} {' '.join(command)}", flush=True)
    return run_supervised(command, env)


def _common_options(parser: argparse.ArgumentParser, default: object) -> None:
    """Options every command takes, before or after its name. After it they default to
    ``SUPPRESS``, so a value given before the command is not overwritten."""
    parser.add_argument(
        "--storage-root",
        type=Path,
        default=default,
        help="storage root (wins over WMTP_STORAGE_ROOT)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default if default is argparse.SUPPRESS else False,
        help="print Dagster's own (DEBUG) log lines",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmtp-assets",
        description="Prepare and prove the model and dataset artifacts of WMTP research.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        parents=[common],
        help="build a small local mirror and materialize every asset from it",
    )
    check = commands.add_parser(
        "verify",
        parents=[common],
        help="rerun every asset check over everything stored; non-zero on any failure",
    )
    check.add_argument(
        "--model",
        action="append",
        help="only this model (e.g. micro_mtp or micro-mtp); without --partition: no dataset "
        "checks",
    )
    check.add_argument(
        "--partition",
        action="append",
        help="only this partition (e.g. mbpp.test); without --model: no model checks",
    )
    out = commands.add_parser(
        "report",
        parents=[common],
        help="write asset_inventory.md (files, sizes, SHA256, counts, checks)",
    )
    out.add_argument("--output", type=Path, help="default: <storage root>/asset_inventory.md")
    commands.add_parser(
        "ui",
        parents=[common],
        usage="wmtp-assets ui [-h] [--storage-root STORAGE_ROOT] [-v] [DAGSTER_DEV_ARGS ...]",
        help="the Dagster web UI (dagster dev) on this root's runs",
        description="Any other argument (-p PORT, --host HOST, -f FILE ...) goes to dagster dev.",
    )
    return parser


_CODE_LOCATION = ["-w", str(files("wmtp_assets") / "workspace.yaml")]
"""The packaged workspace (``workspace.yaml`` at the repo root links to it): the location is named
``wmtp_assets`` whichever way the UI is started."""

COMMANDS = {"demo": demo, "verify": verify, "report": report, "ui": ui}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "ui":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.dagster_args = extra
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
    except UsageError as exc:
        print(f"wmtp-assets {args.command}: {exc}", file=sys.stderr)
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
