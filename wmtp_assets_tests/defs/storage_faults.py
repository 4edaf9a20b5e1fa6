"""The corruptions of ``test_check_faults``: each takes a private copy of the demo's storage root
and damages it the way one row of that table says (some as an adversary would: bytes changed and
every hash inside the root recomputed to match, which only the instance's seal can catch)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from wmtp_assets.files.layout import Layout, ModelDirs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, indent=2))


def _reseal_model(dirs: ModelDirs) -> None:
    """What an adversary (or a careless hand) does after editing a model: recompute the hashes
    and sizes ``metadata.json`` records, then ``SHA256SUMS``, as ``sha256sum`` would."""

    def rehash(meta: dict) -> None:
        for rel in meta["files"]:
            meta["files"][rel] = _sha256(dirs.root / rel)
            meta["size_bytes"][rel] = (dirs.root / rel).stat().st_size

    _edit_json(dirs.metadata, rehash)
    lines = []
    for line in dirs.sha256sums.read_text().splitlines():
        _, name = line.split("  ", 1)
        lines.append(f"{_sha256(dirs.safetensors / name)}  {name}")
    dirs.sha256sums.write_text("\n".join(lines) + "\n")


def _set_tensor_value(dirs: ModelDirs, value: float) -> None:
    """Overwrite the first element of the first tensor with ``value`` (float16)."""
    weights = dirs.weights
    data = bytearray(weights.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    first = min((v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"), default=0)
    data[8 + length + first : 8 + length + first + 2] = struct.pack("<e", value)
    weights.write_bytes(bytes(data))


def _statement_digests(jsonl: Path) -> list[str]:
    """The statements file's list, as its format says: blake2b-96 of each distinct instruction."""
    rows = [json.loads(line) for line in jsonl.read_bytes().splitlines()]
    return sorted(
        {hashlib.blake2b(r["instruction"].encode(), digest_size=12).hexdigest() for r in rows}
    )


def _reseal_split(root: Path, dataset: str, split: str) -> None:
    """Recompute the JSONL SHA256 its stats, index and statements record, and the statement
    digests (the index keeps its line layout: a header line, then one problem per line)."""
    dirs = Layout(root).dataset(dataset)
    digest = _sha256(dirs.jsonl(split))
    statements = dirs.statements_file(split)
    _edit_json(
        statements,
        lambda d: d.update(jsonl_sha256=digest, statements=_statement_digests(dirs.jsonl(split))),
    )
    stats = json.loads(dirs.stats_file(split).read_text())
    index = dirs.problem_index(split)
    index.write_text(index.read_text().replace(stats["jsonl_sha256"], digest, 1))
    stats["jsonl_sha256"] = digest
    dirs.stats_file(split).write_text(json.dumps(stats, indent=2))


def _rewrite_lines(path: Path, edit: Callable[[list[dict]], list[dict]]) -> None:
    """Apply ``edit`` to the rows; rows it leaves equal keep their exact bytes."""
    lines = path.read_text().splitlines(keepends=True)
    original = {json.dumps(json.loads(line), sort_keys=True): line for line in lines}
    edited = edit([json.loads(line) for line in lines])
    path.write_text(
        "".join(
            original.get(json.dumps(row, sort_keys=True), json.dumps(row) + "\n") for row in edited
        )
    )


# --- the faults -------------------------------------------------------------------------------


def flipped_weights_byte(root: Path) -> None:
    weights = Layout(root).model("micro_mtp").weights
    _flip_byte(weights, weights.stat().st_size - 3)


def header_dtype_i16(root: Path) -> None:
    weights = Layout(root).model("micro_ref").weights
    data = bytearray(weights.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    position = data.index(b'"F16"', 8, 8 + length)
    data[position : position + 5] = b'"I16"'
    weights.write_bytes(bytes(data))


def weights_rewritten_consistently(root: Path) -> None:
    dirs = Layout(root).model("micro_mtp")
    _set_tensor_value(dirs, 0.5)
    _reseal_model(dirs)


def infinity_resealed(root: Path) -> None:
    dirs = Layout(root).model("micro_ref")
    _set_tensor_value(dirs, float("inf"))
    _reseal_model(dirs)


def config_rewritten_consistently(root: Path) -> None:
    dirs = Layout(root).model("micro_mtp")
    _edit_json(dirs.configs / "config.json", lambda config: config.update(rope_theta=500000.0))
    _reseal_model(dirs)


def layer_count_changed_resealed(root: Path) -> None:
    dirs = Layout(root).model("micro_ref")
    config = dirs.configs / "config.json"
    _edit_json(config, lambda c: c.update(num_hidden_layers=c["num_hidden_layers"] + 1))
    _reseal_model(dirs)


def metadata_deleted(root: Path) -> None:
    Layout(root).model("micro_mtp").metadata.unlink()


def metadata_not_json(root: Path) -> None:
    Layout(root).model("micro_mtp").metadata.write_text('{"files": ')


def tokenizer_flipped(root: Path) -> None:
    _flip_byte(Layout(root).model("micro_mtp").tokenizer / "tokenizer.model", 100)


def model_link_removed(root: Path) -> None:
    (root / "models" / "micro-mtp").unlink()


def raw_checkpoint_flipped(root: Path) -> None:
    raw = Layout(root).model("meta_llama_mtp").raw / "7B_1T_4" / "consolidated.pth"
    _flip_byte(raw, raw.stat().st_size // 2)


def rope_theta_contradicts_freqs(root: Path) -> None:
    """Upstream publishes a params.json whose rope_theta its checkpoint's rope.freqs deny;
    the fetch record vouches for those bytes (rewritten as a fetch would have recorded them)."""
    raw = Layout(root).model("meta_llama_mtp").raw
    params = raw / "7B_1T_4" / "params.json"
    _edit_json(params, lambda p: p.update(rope_theta=500000.0))

    def record(source: dict) -> None:
        entry = next(f for f in source["files"] if f["path"] == "7B_1T_4/params.json")
        entry.update(sha256=_sha256(params), size=params.stat().st_size)

    _edit_json(raw / "SOURCE.json", record)


def header_duplicate_key(root: Path) -> None:
    """The weights' header names its first tensor twice (same entry: the safetensors library
    keeps the last silently)."""
    weights = Layout(root).model("micro_mtp").weights
    data = weights.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + length].decode()
    start = header.index('"', header.index("}") + 1)  # the first tensor, after __metadata__
    entry = header[start : header.index("}", start) + 1]
    header = (header[:start] + entry + "," + header[start:]).rstrip()
    header += " " * (-len(header) % 8)
    weights.write_bytes(struct.pack("<Q", len(header)) + header.encode() + data[8 + length :])


def reward_raw_relaid_out(root: Path) -> None:
    """The reward model's upstream file saved again with its decoder under another name."""
    import torch

    raw = Layout(root).model("starling_rm_7b").raw / "pytorch_model.bin"
    state = torch.load(raw, weights_only=True)
    torch.save({n.replace("transformer.", "backbone."): t for n, t in state.items()}, raw)


def raw_record_deleted(root: Path) -> None:
    (Layout(root).model("meta_llama_mtp").raw / "SOURCE.json").unlink()


def jsonl_field_renamed(root: Path) -> None:
    jsonl = Layout(root).dataset("mbpp").jsonl("test")
    lines = jsonl.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"output":', b'"outpux":', 1)
    jsonl.write_bytes(b"".join(lines))


def stats_count_changed(root: Path) -> None:
    stats = Layout(root).dataset("codecontests").stats_file("valid")
    _edit_json(stats, lambda s: s.update(records=s["records"] + 1))


def stats_deleted(root: Path) -> None:
    Layout(root).dataset("mbpp").stats_file("test").unlink()


def stats_not_json(root: Path) -> None:
    Layout(root).dataset("mbpp").stats_file("test").write_text("{")


def output_rewritten_consistently(root: Path) -> None:
    """One character of a solution changed to another of the same token count, and every hash
    inside the root recomputed: the stored data now differs from what was materialized."""
    dirs = Layout(root).dataset("mbpp")
    jsonl = dirs.jsonl("test")
    before = jsonl.read_text().splitlines(keepends=True)[0]

    def edit(rows: list[dict]) -> list[dict]:
        digit = next(c for c in rows[0]["output"] if c.isdigit())  # Llama-2 splits digits
        rows[0]["output"] = rows[0]["output"].replace(digit, "7" if digit != "7" else "8", 1)
        return rows

    _rewrite_lines(jsonl, edit)
    after = jsonl.read_text().splitlines(keepends=True)[0]
    small = dirs.small_jsonl("test")
    small.write_text(small.read_text().replace(before, after))
    _reseal_split(root, "mbpp", "test")


def task_id_duplicated_resealed(root: Path) -> None:
    jsonl = Layout(root).dataset("mbpp").jsonl("test")

    def edit(rows: list[dict]) -> list[dict]:
        rows[1]["task_id"] = rows[0]["task_id"]
        return rows

    _rewrite_lines(jsonl, edit)
    _reseal_split(root, "mbpp", "test")


def over_long_output_resealed(root: Path) -> None:
    jsonl = Layout(root).dataset("mbpp").jsonl("test")

    def edit(rows: list[dict]) -> list[dict]:
        rows[0]["output"] += "\n" + "pass\n" * 3000
        return rows

    _rewrite_lines(jsonl, edit)
    _reseal_split(root, "mbpp", "test")


def index_line_moved(root: Path) -> None:
    index = Layout(root).dataset("mbpp").problem_index("test")
    lines = index.read_text().splitlines(keepends=True)
    entry = lines[1]  # the first problem: '"<id>":{...},'
    body = entry.rstrip(",\n")
    ((key, value),) = json.loads("{" + body + "}").items()
    value["correct_indices"] = [i + 1 for i in value["correct_indices"]]
    lines[1] = json.dumps({key: value})[1:-1] + entry[len(body) :]
    index.write_text("".join(lines))


def valid_problem_copied_into_test(root: Path) -> None:
    dirs = Layout(root).dataset("codecontests")
    leaked = dirs.jsonl("valid").read_text().splitlines(keepends=True)[0]
    with dirs.jsonl("test").open("a") as test:
        test.write(leaked)
    _reseal_split(root, "codecontests", "test")


def statement_dropped(root: Path) -> None:
    _edit_json(
        Layout(root).dataset("codecontests").statements_file("test"),
        lambda d: d["statements"].pop(),
    )


def small_line_changed(root: Path) -> None:
    small = Layout(root).dataset("mbpp").small_jsonl("test")
    _rewrite_lines(small, lambda rows: [{**rows[0], "output": "pass"}, *rows[1:]])


def eval_problem_removed(root: Path) -> None:
    path = Layout(root).dataset("codecontests").eval_jsonl("valid")
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))


def eval_tests_emptied(root: Path) -> None:
    path = Layout(root).dataset("codecontests").tests_json("valid")
    _edit_json(path, lambda tests: tests.update({k: {} for k in tests}))


def dataset_link_removed(root: Path) -> None:
    (root / "datasets" / "mbpp").unlink()


def raw_shard_flipped(root: Path) -> None:
    raw = Layout(root).dataset("mbpp").raw
    shard = next(p for p in sorted(raw.rglob("*.parquet")) if "test" in p.name)
    _flip_byte(shard, shard.stat().st_size // 2)


def raw_shard_unlisted(root: Path) -> None:
    """A shard nobody fetched, put beside the fetched ones (it matches the split's pattern)."""
    raw = Layout(root).dataset("mbpp").raw / "full"
    (raw / "test-00001-of-00002.parquet").write_bytes(
        (raw / "train-00000-of-00001.parquet").read_bytes()
    )


def raw_refetched_other_bytes(root: Path) -> None:
    """The test shard replaced by other bytes of the same rows, its SOURCE.json record made to
    match (what a refetch of another commit leaves): raw/ is consistent, the split is not of it."""
    raw = Layout(root).dataset("mbpp").raw
    path = "full/test-00000-of-00001.parquet"
    pq.write_table(pq.read_table(raw / path), raw / path, compression="zstd")

    def rerecord(record: dict) -> None:
        for entry in record["files"]:
            if entry["path"] == path:
                entry.update(sha256=_sha256(raw / path), size=(raw / path).stat().st_size)

    _edit_json(raw / "SOURCE.json", rerecord)
