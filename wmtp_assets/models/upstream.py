"""Which upstream repos, revisions and files the model assets fetch.

The Meta, Princeton and Berkeley repos publish no release tags; the requested revision is
``main`` and the commit it resolved to is recorded in ``raw/SOURCE.json`` at fetch time, so
every artifact names the exact upstream snapshot it came from. Set a commit here to pin harder.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class UpstreamRepo(BaseModel):
    model_config = ConfigDict(frozen=True)

    repo_id: str
    revision: str
    patterns: tuple[str, ...]


META_MTP = UpstreamRepo(
    repo_id="facebook/multi-token-prediction",
    revision="main",
    patterns=("7B_1T_4/consolidated.pth", "7B_1T_4/params.json", "tokenizer.model"),
)

SHEARED_LLAMA = UpstreamRepo(
    repo_id="princeton-nlp/Sheared-LLaMA-2.7B",
    revision="main",
    patterns=(
        "config.json",
        "generation_config.json",
        "pytorch_model.bin.index.json",
        "pytorch_model-*.bin",
        "tokenizer.model",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ),
)

STARLING_RM = UpstreamRepo(
    repo_id="berkeley-nest/Starling-RM-7B-alpha",
    revision="main",
    patterns=("pytorch_model.bin", "config.json", "tokenizer.model"),
)
