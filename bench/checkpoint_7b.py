"""What the model benches share: a 7B-shaped Meta checkpoint, page-cache warming, and memory
figures of a child process read from ``/proc``.

The checkpoint has the real 7B dimensions (dim 4096, vocab 32000, FFN 11008, 32 heads) with
``blocks`` transformer blocks and ``n_future_tokens`` 1, in float32, Normal(0, 0.02) matrices
and unit norms, seeded.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

DIM, VOCAB, FFN, HEADS = 4096, 32000, 11008, 32
LLAMA2_TOKENIZER = Path("/work/shared/llama2-tokenizer/tokenizer.model")


def params(blocks: int) -> dict[str, object]:
    return {
        "dim": DIM,
        "n_layers": blocks,
        "n_heads": HEADS,
        "n_kv_heads": HEADS,
        "vocab_size": VOCAB,
        "multiple_of": 256,
        "ffn_dim_multiplier": None,
        "norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "n_future_tokens": 1,
    }


def build_source(raw: Path, blocks: int) -> Path:
    """Write ``7B_1T_4/consolidated.pth`` and ``params.json`` under ``raw``; return the .pth."""
    import torch

    folder = raw / "7B_1T_4"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(params(blocks)))
    generator = torch.Generator().manual_seed(0)

    def weight(*shape: int) -> torch.Tensor:
        return torch.empty(shape).normal_(0.0, 0.02, generator=generator)

    state = {"tok_embeddings.weight": weight(VOCAB, DIM), "output.weight": weight(VOCAB, DIM)}
    state["norm.weight"] = torch.ones(DIM)
    for i in range(blocks):
        p = f"layers.{i}"
        for proj in ("wq", "wk", "wv", "wo"):
            state[f"{p}.attention.{proj}.weight"] = weight(DIM, DIM)
        state[f"{p}.feed_forward.w1.weight"] = weight(FFN, DIM)
        state[f"{p}.feed_forward.w3.weight"] = weight(FFN, DIM)
        state[f"{p}.feed_forward.w2.weight"] = weight(DIM, FFN)
        state[f"{p}.attention_norm.weight"] = torch.ones(DIM)
        state[f"{p}.ffn_norm.weight"] = torch.ones(DIM)
    state["rope.freqs"] = torch.ones(DIM // HEADS // 2)
    path = folder / "consolidated.pth"
    torch.save(state, path)
    return path


def warm(*paths: Path) -> None:
    """Read files once so the measured run reads them from the page cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(64 << 20):
                pass


def _rollup_kb(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return fields
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    return fields


class MemorySampler(threading.Thread):
    """Peaks of a process's ``smaps_rollup`` (every ``interval_s``): ``Rss``, ``Anonymous``
    (memory only this run holds: heap, tensors) and ``Private_Clean + Private_Dirty``.

    Mapped file pages count in Rss and, when no other process maps them, in Private_Clean,
    although the kernel can drop them at any time; Anonymous is what cannot be dropped.
    """

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.peak_kb = {"Rss": 0, "Anonymous": 0, "Private": 0}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            fields = _rollup_kb(self.pid)
            sample = {
                "Rss": fields.get("Rss", 0),
                "Anonymous": fields.get("Anonymous", 0),
                "Private": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
            }
            for key, value in sample.items():
                self.peak_kb[key] = max(self.peak_kb[key], value)
            time.sleep(self.interval_s)

    def stop(self) -> dict[str, float]:
        """Stop sampling; peaks in MB."""
        self._stop_event.set()
        self.join()
        return {key: kb / 1024 for key, kb in self.peak_kb.items()}
