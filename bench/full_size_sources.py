"""Full-size upstream checkpoints built without holding them in RAM, in the upstream formats.

- ``7B_1T_4``: Meta's multi-token-prediction 7B with 4 heads (REFERENCE §1): 291 float32
  tensors plus ``rope.freqs``, 26.95 GB, one torch zip ``consolidated.pth``, tensors in the
  model's own ``state_dict`` order (embeddings, trunk layers, extra heads, norm, output);
- ``Sheared-LLaMA-2.7B`` (REFERENCE §2): HF names, two float32 ``.bin`` shards (9.95 GB and
  0.86 GB, split where ``save_pretrained``'s 10 GB limit splits) with their index.

How, without RAM: one ``pool`` file of seeded Normal(0, 0.02) float32 values (2 GiB) is mapped
with numpy, every matrix is a window of it at its own offset (``torch.from_numpy`` of the
window: a file-backed tensor), and ``torch.save`` streams those windows into the zip from the
page cache. Every tensor therefore holds distinct random values (windows start at different
offsets) and the process holds no tensor bytes of its own; the pool is deleted afterwards.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.models.tokenizer_files import write_tokenizer_folder

LLAMA2_TOKENIZER = Path(__file__).resolve().parents[1] / (
    "wmtp_assets/demo/llama2_tokenizer/tokenizer.model"
)
LLAMA2_SHA256 = sha256_file(LLAMA2_TOKENIZER)
POOL_VALUES = 1 << 29
"""Float32 values in the pool (2 GiB); every window is shorter than this."""

META_PARAMS = {
    "dim": 4096,
    "n_layers": 32,
    "n_heads": 32,
    "n_kv_heads": 32,
    "vocab_size": 32000,
    "multiple_of": 256,
    "ffn_dim_multiplier": None,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "n_future_tokens": 4,
}
SHEARED_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2560,
    "intermediate_size": 6912,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "num_key_value_heads": 20,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "torch_dtype": "float32",
    "use_cache": True,
}


class Pool:
    """Windows of one file of seeded random float32 values, as file-backed tensors."""

    def __init__(self, path: Path, seed: int = 0) -> None:
        self.path = path
        if not path.exists() or path.stat().st_size != POOL_VALUES * 4:
            generator = torch.Generator().manual_seed(seed)
            chunk = torch.empty(1 << 24)
            with open(path, "wb") as fh:
                for _ in range(POOL_VALUES // chunk.numel()):
                    fh.write(chunk.normal_(0.0, 0.02, generator=generator).numpy().tobytes())
        self.values = np.memmap(path, dtype=np.float32, mode="r")
        self._next = 0

    def window(self, *shape: int) -> torch.Tensor:
        """A ``shape`` tensor viewing the pool from the next offset (distinct for each call)."""
        numel = int(np.prod(shape))
        start = self._next % (POOL_VALUES - numel) // 64 * 64
        self._next += 7_919_617  # a prime stride: windows start at different offsets
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only numpy memory: never written
            return torch.from_numpy(self.values[start : start + numel]).view(shape)


def meta_state(pool: Pool, n_layers: int) -> Iterator[tuple[str, torch.Tensor]]:
    """The 7B_1T_4 tensors in the model's ``state_dict`` order, with ``n_layers`` blocks."""
    dim, vocab, ffn = META_PARAMS["dim"], META_PARAMS["vocab_size"], 11008
    assert isinstance(dim, int) and isinstance(vocab, int)
    yield "tok_embeddings.weight", pool.window(vocab, dim)
    n_future = META_PARAMS["n_future_tokens"]
    assert isinstance(n_future, int)
    blocks = [f"layers.{i}" for i in range(n_layers - n_future + 1)]
    blocks += [f"extra_heads.{j}" for j in range(n_future - 1)]
    for prefix in blocks:
        for proj in ("wq", "wk", "wv", "wo"):
            yield f"{prefix}.attention.{proj}.weight", pool.window(dim, dim)
        yield f"{prefix}.feed_forward.w1.weight", pool.window(ffn, dim)
        yield f"{prefix}.feed_forward.w2.weight", pool.window(dim, ffn)
        yield f"{prefix}.feed_forward.w3.weight", pool.window(ffn, dim)
        yield f"{prefix}.attention_norm.weight", torch.ones(dim)
        yield f"{prefix}.ffn_norm.weight", torch.ones(dim)
    yield "norm.weight", torch.ones(dim)
    yield "output.weight", pool.window(vocab, dim)
    yield "rope.freqs", 1.0 / (10000.0 ** (torch.arange(0, 128, 2).float() / 128))


def sheared_state(pool: Pool) -> Iterator[tuple[str, torch.Tensor]]:
    """The Sheared-LLaMA-2.7B tensors in ``LlamaForCausalLM``'s ``state_dict`` order."""
    hidden, inter, vocab = 2560, 6912, 32000
    yield "model.embed_tokens.weight", pool.window(vocab, hidden)
    for i in range(32):
        p = f"model.layers.{i}"
        for proj in ("q", "k", "v", "o"):
            yield f"{p}.self_attn.{proj}_proj.weight", pool.window(hidden, hidden)
        yield f"{p}.mlp.gate_proj.weight", pool.window(inter, hidden)
        yield f"{p}.mlp.up_proj.weight", pool.window(inter, hidden)
        yield f"{p}.mlp.down_proj.weight", pool.window(hidden, inter)
        yield f"{p}.input_layernorm.weight", torch.ones(hidden)
        yield f"{p}.post_attention_layernorm.weight", torch.ones(hidden)
    yield "model.norm.weight", torch.ones(hidden)
    yield "lm_head.weight", pool.window(vocab, hidden)


def build_meta(repo: Path, scratch: Path, n_layers: int = 32) -> Path:
    """``repo``/{7B_1T_4/consolidated.pth, 7B_1T_4/params.json, tokenizer.model}; fewer than
    the real 32 layers only to profile at a smaller size."""
    folder = repo / "7B_1T_4"
    folder.mkdir(parents=True, exist_ok=True)
    params = {**META_PARAMS, "n_layers": n_layers}
    (folder / "params.json").write_text(json.dumps(params, indent=2))
    shutil.copyfile(LLAMA2_TOKENIZER, repo / "tokenizer.model")
    pool = Pool(scratch / "pool.f32")
    torch.save(dict(meta_state(pool, n_layers)), folder / "consolidated.pth")
    return folder / "consolidated.pth"


def build_sheared(repo: Path, scratch: Path) -> list[Path]:
    """``repo``/{config.json, pytorch_model-0000{1,2}-of-00002.bin + index, tokenizer files}."""
    repo.mkdir(parents=True, exist_ok=True)
    pool = Pool(scratch / "pool.f32")
    shards: list[dict[str, torch.Tensor]] = [{}, {}]
    size = 0
    for name, tensor in sheared_state(pool):
        nbytes = tensor.numel() * 4
        # save_pretrained's default 10GB shard limit: the first shard ends where it would pass
        shards[0 if not shards[1] and size + nbytes <= 10_000_000_000 else 1][name] = tensor
        size += nbytes
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, start=1):
        path = repo / f"pytorch_model-{i:05d}-of-00002.bin"
        torch.save(shard, path)
        weight_map |= dict.fromkeys(shard, path.name)
        paths.append(path)
    index = {"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))}
    (repo / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))
    (repo / "config.json").write_text(json.dumps(SHEARED_CONFIG, indent=2))
    (repo / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})
    )
    write_tokenizer_folder(LLAMA2_TOKENIZER, repo, LLAMA2_SHA256)
    return paths
