import os
from pathlib import Path

from wmtp_assets.defs.revalidation import MODEL_CHECK_KEYS, MODELS_RUN, RevalidationRun
from wmtp_assets.files.layout import Layout
from wmtp_assets.graph_runs import HASHED_AHEAD_FROM, _large_model_files


def _sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)  # no disk used
    return path


def test_verify_hashes_ahead_the_large_model_files_weights_first(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    meta = layout.model("meta_llama_mtp")
    raw = _sparse(meta.raw / "7B_1T_4" / "consolidated.pth", HASHED_AHEAD_FROM)
    _sparse(meta.raw / "7B_1T_4" / "params.json", 200)  # small: the checks read it
    weights = _sparse(meta.weights, HASHED_AHEAD_FROM + 1)
    outside = _sparse(tmp_path / "elsewhere" / "big.bin", HASHED_AHEAD_FROM)
    os.symlink(outside, meta.raw / "link.bin")  # never followed
    _sparse(layout.model("micro_mtp").weights, HASHED_AHEAD_FROM)  # not in the run
    run = RevalidationRun(
        MODELS_RUN, [k for k in MODEL_CHECK_KEYS if k.asset_key.path[1] == "meta_llama_mtp"], {}
    )
    assert _large_model_files(layout, run) == [weights, raw]
    assert _large_model_files(layout, RevalidationRun("mbpp.test", [], {})) == []
