"""The ``wmtp-assets`` command as a user types it: quick help, exit codes, where it writes,
what it checks, what it prints and how ``ui`` stops."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from wmtp_assets.cli import EXIT_FAILED, EXIT_NOTHING_STORED, EXIT_OK, EXIT_USAGE, main
from wmtp_assets.data.partitions import PARTITION_KEYS
from wmtp_assets.files.layout import MODEL_FOLDERS, Layout
from wmtp_assets.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_help_imports_neither_dagster_nor_torch_whatever_the_environment_holds() -> None:
    code = (
        "import sys\n"
        "from wmtp_assets.cli import main\n"
        "try:\n    main(['--help'])\n"
        "except SystemExit as e:\n    assert e.code == 0\n"
        "heavy = sorted(m for m in ('dagster', 'torch', 'transformers') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    env = {"WMTP_MAX_TOKENS": "not-a-number", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "WMTP_TOKENIZER_SHA256" in done.stdout and "exit codes" in done.stdout
    assert "heavy: []" in done.stdout


def test_a_bad_setting_is_one_line_with_a_hint_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WMTP_DEVICE", "tpu")
    assert main(["--storage-root", str(tmp_path), "verify"]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("wmtp-assets: WMTP_DEVICE: device must be one of auto, cuda, mps")
    assert err[1].startswith("hint: ")


@pytest.mark.parametrize("command", ["verify", "report"])
@pytest.mark.parametrize("exists", [True, False], ids=["empty", "missing"])
def test_an_empty_or_missing_root_is_nothing_stored_and_stays_as_it_was(
    command: str,
    exists: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    root = tmp_path / "storage"
    if exists:
        root.mkdir()
    assert main(["--storage-root", str(root), command]) == EXIT_NOTHING_STORED
    assert f"nothing stored under {root}" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == ([root] if exists else []), "nothing is created"


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--storage-root", "{root}"],
        ["verify", "-v", "--storage-root", "{root}"],
        ["--storage-root", "/elsewhere", "verify", "--storage-root", "{root}"],
        ["report", "--storage-root", "{root}"],
    ],
    ids=["after", "after-with-v", "after-wins", "report-after"],
)
def test_options_after_the_command_work_as_before_it(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "storage"
    assert main([a.format(root=root) for a in argv]) == EXIT_NOTHING_STORED
    assert f"nothing stored under {root}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "names"),
    [
        ("--partition", "mbpp.tset", PARTITION_KEYS),
        ("--partition", "mbpp", PARTITION_KEYS),
        ("--model", "micro", [*MODEL_FOLDERS, *MODEL_FOLDERS.values()]),
        ("--model", "micro_mtp/", [*MODEL_FOLDERS, *MODEL_FOLDERS.values()]),
    ],
)
def test_an_unknown_model_or_partition_exits_2_with_one_line_of_valid_names(
    option: str,
    value: str,
    names: list[str],
    copied_demo_storage: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = copied_demo_storage.storage_root
    assert main(["verify", "--storage-root", str(root), option, value]) == EXIT_USAGE
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith(f"wmtp-assets verify: {option} {value}: unknown")
    assert all(re.search(rf"\b{re.escape(name)}\b", line) for name in names), line
    assert captured.out == "", "nothing is checked"


def _checked_rows(out: str) -> list[tuple[str, str]]:
    """(asset, partition) of every row of verify's table ("" for an unpartitioned asset)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("asset "))
    end = lines.index("", start)
    partition_at = lines[start].index("partition")
    return [
        (line.split()[0], line[partition_at:].split()[0] if line[partition_at] != " " else "")
        for line in lines[start + 1 : end]
    ]


@pytest.mark.parametrize(
    ("argv", "models", "partitions"),
    [
        (["--model", "micro-mtp"], {"micro_mtp"}, set()),
        (["--model", "micro_ref", "--model", "micro_mtp"], {"micro_mtp", "micro_ref"}, set()),
        (["--partition", "mbpp.test"], set(), {"mbpp.test"}),
        (
            ["--partition", "humaneval.test", "--model", "micro_ref"],
            {"micro_ref"},
            {"humaneval.test"},
        ),
    ],
    ids=["folder-alias", "two-models", "one-partition", "partition-and-model"],
)
def test_verify_checks_exactly_the_scope_asked_for(
    argv: list[str],
    models: set[str],
    partitions: set[str],
    copied_demo_storage: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = copied_demo_storage.storage_root
    assert main(["verify", "--storage-root", str(root), *argv]) == EXIT_OK
    rows = _checked_rows(capsys.readouterr().out)
    assert {asset.split("/")[1] for asset, part in rows if not part} == models
    assert {part for _, part in rows if part} == partitions
    assert all(asset.startswith("datasets/") == bool(part) for asset, part in rows)


def test_verify_and_report_after_the_demo_pass_and_write_under_the_root(
    copied_demo_storage: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copied_demo_storage.storage_root
    assert main(["--storage-root", str(root), "verify"]) == EXIT_OK
    captured = capsys.readouterr()
    out = captured.out
    assert f"[{root / 'wmtp_settings.json'}]" in out, "verify says where the mirror came from"
    assert captured.err == "", "quiet by default: nothing of Dagster's own log"
    rows = _checked_rows(out)
    # the whole graph: every asset, every partition
    summary = out.strip().splitlines()[-1]
    n_assets = len({asset for asset, _ in rows})
    assert n_assets == 16
    assert summary.startswith(
        f"verified everything: {len(rows)} checks over {n_assets} assets, "
        f"{len(PARTITION_KEYS)} partitions and "
    )
    files = int(re.search(r"and ([\d,]+) files:", summary)[1].replace(",", ""))  # type: ignore[index]
    sealed = sum(
        int(m[1]) for m in re.finditer(r"(\d+) files? unchanged since materialization", out)
    )
    assert files == sealed > 0
    assert summary.endswith(f": {len(rows)} passed, 0 failed")
    assert re.search(r"\(tolerance [\d.e+-]+\)", out), "summaries are printed whole"

    assert main(["--storage-root", str(root), "report"]) == EXIT_OK
    wrote = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"wrote {re.escape(str(root / 'asset_inventory.md'))}: [\d,]+ files of \d+ artifacts "
        rf"inventoried; {len(rows)} checks over 16 assets, 7 partitions and {files:,} files: "
        rf"{len(rows)} passed, 0 failed",
        wrote,
    ), wrote
    assert (root / "asset_inventory.md").is_file()
    elsewhere = tmp_path / "elsewhere.md"
    assert main(["--storage-root", str(root), "report", "--output", str(elsewhere)]) == EXIT_OK
    assert "# Asset inventory" in elsewhere.read_text()


def test_verbose_shows_dagsters_own_log(
    copied_demo_storage: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    root = copied_demo_storage.storage_root
    assert main(["verify", "--partition", "mbpp.test", "--storage-root", str(root)]) == EXIT_OK
    quiet = capfd.readouterr()
    assert "STEP_START" not in quiet.out + quiet.err and quiet.err == ""
    assert main(["verify", "-v", "--partition", "mbpp.test", "--storage-root", str(root)]) == 0
    loud = capfd.readouterr()
    assert "STEP_START" in loud.out + loud.err and " - DEBUG - " in loud.out + loud.err


def test_the_demo_prints_progress_at_least_every_10_seconds(demo_stdout: str) -> None:
    stamps = [float(m[1]) for m in re.finditer(r"^  \[ *(\d+)s\] ", demo_stdout, re.M)]
    assert stamps and stamps[0] <= 10
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) <= 10, f"silent for {max(gaps):.0f}s"
    for asset in ("models/micro_mtp [models]", "datasets/stats [mbpp.test]"):
        assert f"materialized {asset}" in demo_stdout
    summary = next(line for line in demo_stdout.splitlines() if line.startswith("demo OK"))
    assert re.search(
        r": \d+ materializations of 16 assets over 7 partitions, [\d,]+ files written; "
        r"\d+ checks passed, 0 failed; recorded in ",
        summary,
    ), summary


def test_a_deleted_metadata_file_fails_verify_instead_of_being_skipped(
    copied_demo_storage: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copied_demo_storage.storage_root
    Layout(root).model("micro_mtp").metadata.unlink()
    stats = Layout(root).dataset("mbpp").stats_file("test")
    stats.unlink()
    assert main(["--storage-root", str(root), "verify"]) == EXIT_FAILED
    failed = [line for line in capsys.readouterr().out.splitlines() if "  FAIL  " in line]
    assert any(line.startswith("models/micro_mtp ") for line in failed)
    assert any(line.startswith("datasets/stats") and "mbpp.test" in line for line in failed)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc), whatever its process group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_ui_stops_dagster_dev_and_everything_it_started_on_a_signal(
    signum: int, tmp_path: Path
) -> None:
    """``wmtp-assets ui`` on the project's own code location (a code server that takes seconds
    to load), stopped by a signal to ``ui`` alone: ``dagster dev`` under ``exec`` left its code
    servers running after SIGTERM."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WMTP_", "DAGSTER_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "DAGSTER_CLI_DEV_PORT": str(port),
        "DAGSTER_CLI_DEV_HOST": "127.0.0.1",
    }
    root = tmp_path / "storage"
    log = tmp_path / "ui.log"
    command = [sys.executable, "-m", "wmtp_assets.cli", "ui", "--storage-root", str(root)]
    with log.open("wb") as out:
        ui = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while True:
            assert ui.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no webserver after 120s:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        started = _descendants(ui.pid)
        assert len(started) >= 3, "dagster dev, its webserver and its daemon"
        ui.send_signal(signum)  # to ui alone, as `kill` or a container stop sends it
        assert ui.wait(timeout=60) == EXIT_OK, log.read_text()
        time.sleep(1.0)
        assert not [pid for pid in started if _alive(pid)], log.read_text()
        assert (root / "dagster_home" / "dagster.yaml").is_file(), "the root's own instance"
    finally:
        for pid in [ui.pid, *started]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        ui.wait()
