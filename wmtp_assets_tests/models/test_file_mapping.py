"""Checkpoint mappings: shared and read-only (so any size maps), refusals named as limits."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from wmtp_assets.models.checkpoint_reader import load_torch_checkpoint
from wmtp_assets.models.file_mapping import mappings_of


def _checkpoint(path: Path, mb: int = 8) -> Path:
    torch.save({"w": torch.arange(mb * (1 << 18), dtype=torch.float32)}, path)
    return path


def test_checkpoint_is_mapped_shared_and_read_only(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "consolidated.pth")
    state = load_torch_checkpoint(path)
    lines = [line.strip() for line in Path("/proc/self/maps").read_text().splitlines()]
    ours = [line for line in lines if line.endswith(str(path))]
    assert ours, "the checkpoint is memory-mapped"
    # The permissions column: 's' shared (a private 'p' mapping larger than RAM + swap is
    # refused by the kernel), and no 'w': a write through a tensor cannot reach the file.
    assert all(line.split()[1] == "r--s" for line in ours), ours
    assert [m.perms for m in mappings_of(path)] == [line.split()[1] for line in ours]
    assert torch.equal(state["w"][:4], torch.arange(4, dtype=torch.float32))


def test_a_write_through_a_mapped_tensor_crashes_and_leaves_the_file_unchanged(
    tmp_path: Path,
) -> None:
    path = _checkpoint(tmp_path / "consolidated.pth")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    script = textwrap.dedent(
        f"""
        from wmtp_assets.models.checkpoint_reader import load_torch_checkpoint
        state = load_torch_checkpoint({str(path)!r})
        state["w"].add_(1.0)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGSEGV, result.stderr.decode()[-2000:]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_mapping_refused_for_memory_names_the_limit_not_corruption(tmp_path: Path) -> None:
    # 600 MB under an address-space limit the interpreter and torch fit in but the file does
    # not: the kernel refuses the mapping with ENOMEM, as overcommit refuses a private one.
    path = _checkpoint(tmp_path / "big.pth", mb=600)
    script = textwrap.dedent(
        f"""
        import resource
        from wmtp_assets.models.checkpoint_reader import CheckpointError, load_torch_checkpoint
        with open("/proc/self/status") as fh:
            vm = next(int(l.split()[1]) for l in fh if l.startswith("VmSize:")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (300 << 20), resource.RLIM_INFINITY))
        try:
            load_torch_checkpoint({str(path)!r})
        except CheckpointError as exc:
            print(exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    message = result.stdout.decode().strip()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert message.startswith(f"{path}: the kernel refused to map"), message
    assert "memory limit, not a damaged file" in message and "RLIMIT_AS" in message
    assert "corrupt" not in message
