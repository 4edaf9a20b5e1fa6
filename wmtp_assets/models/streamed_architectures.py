"""The model families the streaming forward check runs (``forward_equivalence``): which tensor
names make up a stage and which modules compute it.

Meta MTP checkpoints run through this project's ``TransformerBlock``; Hugging Face Llama
checkpoints through transformers' own ``LlamaDecoderLayer``, ``LlamaRMSNorm`` and rotary
embedding, one layer at a time: transformers defines what HF-named weights compute (downstream
loads them with ``from_pretrained``), so no q/k permutation is re-derived here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.mtp.model import RMSNorm, Transformer, TransformerBlock, rope


class StreamedArchitecture:
    """What the streaming forward needs to know of a model family.

    ``embedding`` and ``output`` are tensor names; ``norm`` is the final norm's module prefix;
    ``trunk`` are block prefixes run in sequence and ``heads`` block prefixes each run on the
    trunk output (none: the trunk output is the one latent). Logits are ``[B, T, heads, vocab]``.
    """

    embedding: str
    output: str
    norm: str
    trunk: Sequence[str]
    heads: Sequence[str]
    vocab_size: int

    def new_block(self) -> nn.Module:
        raise NotImplementedError

    def new_norm(self) -> nn.Module:
        raise NotImplementedError

    def positions(self, seqlen: int, device: torch.device) -> Any:
        """What every block needs besides the hidden state (the RoPE angles)."""
        raise NotImplementedError

    def run_block(self, block: nn.Module, hidden: Tensor, positions: Any) -> Tensor:
        raise NotImplementedError

    def whole_model_logits(self, folder: Path, tokens: Tensor, device: torch.device) -> Tensor:
        """Float32 logits ``[B, T, heads, vocab]`` of the model stored in ``folder``, loaded whole
        the way the trainer loads it."""
        raise NotImplementedError


class MetaMTPArchitecture(StreamedArchitecture):
    """Meta's MTP Transformer: ``layers[:-1]`` trunk, heads ``[layers[-1], *extra_heads]``."""

    def __init__(self, args: ModelArgs) -> None:
        self.args = args
        self.embedding, self.output, self.norm = "tok_embeddings.weight", "output.weight", "norm"
        last = args.n_trunk_layers - 1
        self.trunk = [f"layers.{i}" for i in range(last)]
        self.heads = [f"layers.{last}", *(f"extra_heads.{j}" for j in range(args.n_extra_heads))]
        self.vocab_size = args.vocab_size

    def new_block(self) -> nn.Module:
        with torch.device("meta"):
            return TransformerBlock(self.args)

    def new_norm(self) -> nn.Module:
        with torch.device("meta"):
            return RMSNorm(self.args.dim, eps=self.args.norm_eps)

    def positions(self, seqlen: int, device: torch.device) -> Any:
        return rope(self.args, 0, seqlen, device)

    def run_block(self, block: nn.Module, hidden: Tensor, positions: Any) -> Tensor:
        out: Tensor = block(hidden, 0, positions)
        return out

    def whole_model_logits(self, folder: Path, tokens: Tensor, device: torch.device) -> Tensor:
        weights = folder / "model.safetensors"
        with torch.device("meta"):
            model = Transformer(self.args)
        model = model.to_empty(device=device)
        with open_checkpoint(weights) as stored:
            state = {n: stored.get(n).to(device, torch.float32) for n in stored.names}
        model.load_meta_state_dict(state, source=str(weights))
        del state
        logits: Tensor = model(tokens.to(device))
        return logits


class HFLlamaArchitecture(StreamedArchitecture):
    """``LlamaForCausalLM``, through transformers' own layer modules (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        import transformers  # imported on use: it costs seconds at every CLI start otherwise

        self.transformers = transformers
        self.config = transformers.LlamaConfig.from_dict(dict(config))
        # sdpa with no mask is causal attention for more than one token, on every device.
        self.config._attn_implementation = "sdpa"
        self.embedding, self.norm = "model.embed_tokens.weight", "model.norm"
        tied = bool(self.config.tie_word_embeddings)
        self.output = self.embedding if tied else "lm_head.weight"
        self.trunk = [f"model.layers.{i}" for i in range(self.config.num_hidden_layers)]
        self.heads = []
        self.vocab_size = int(self.config.vocab_size)

    def new_block(self) -> nn.Module:
        llama = self.transformers.models.llama.modeling_llama
        with torch.device("meta"):
            block: nn.Module = llama.LlamaDecoderLayer(self.config, layer_idx=0)
        return block

    def new_norm(self) -> nn.Module:
        llama = self.transformers.models.llama.modeling_llama
        with torch.device("meta"):
            norm: nn.Module = llama.LlamaRMSNorm(
                self.config.hidden_size, eps=self.config.rms_norm_eps
            )
        return norm

    def positions(self, seqlen: int, device: torch.device) -> Any:
        llama = self.transformers.models.llama.modeling_llama
        rotary = llama.LlamaRotaryEmbedding(config=self.config).to(device)
        position_ids = torch.arange(seqlen, device=device)[None]
        probe = torch.zeros(1, dtype=torch.float32, device=device)
        return position_ids, rotary(probe, position_ids)

    def run_block(self, block: nn.Module, hidden: Tensor, positions: Any) -> Tensor:
        position_ids, embeddings = positions
        out = block(hidden, position_ids=position_ids, position_embeddings=embeddings)
        # transformers 4.x returns a tuple, 5.x the hidden state
        result: Tensor = out[0] if isinstance(out, tuple) else out
        return result

    def whole_model_logits(self, folder: Path, tokens: Tensor, device: torch.device) -> Tensor:
        with quiet_transformers(self.transformers):
            model: nn.Module = self.transformers.AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, attn_implementation="sdpa"
            )
        logits: Tensor = model.to(device)(tokens.to(device)).logits.float()
        return logits[:, :, None, :]


@contextlib.contextmanager
def quiet_transformers(transformers: Any) -> Iterator[None]:
    """No "Loading weights" progress bar in check output."""
    hf_logging = transformers.utils.logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
