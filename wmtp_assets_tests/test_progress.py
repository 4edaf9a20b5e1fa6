"""Progress lines: stamped with the elapsed seconds, a heartbeat whenever nothing was printed for
the interval, nothing once the command is done."""

from __future__ import annotations

import io
import re
import time

from wmtp_assets.progress import Progress


def test_a_silent_step_gets_a_heartbeat_naming_it_and_nothing_follows_the_end() -> None:
    out = io.StringIO()
    with Progress(out=out, interval_s=0.3) as progress:
        progress.line("first")
        progress.working_on("the slow step")
        time.sleep(1.25)
        progress.line("finished the slow step")
    done = out.getvalue()
    time.sleep(0.7)
    assert out.getvalue() == done, "the heartbeat stops with the command"
    lines = done.splitlines()
    assert all(re.match(r"  \[ *\d+s\] ", line) for line in lines), lines
    beats = [line for line in lines if line.endswith("... still running: the slow step")]
    assert 2 <= len(beats) <= 5, lines
    assert lines[0].endswith("first") and lines[-1].endswith("finished the slow step")


def test_no_heartbeat_while_lines_keep_coming() -> None:
    out = io.StringIO()
    with Progress(out=out, interval_s=0.5) as progress:
        for step in range(8):
            progress.line(f"step {step}")
            time.sleep(0.1)
    assert "still running" not in out.getvalue()
