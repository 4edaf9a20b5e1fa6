"""Proof of the proof: one fault per row, each applied to a private copy of the demo's storage
(and its Dagster instance), then the ``revalidate`` plan over the affected model or partition.

Each row names exactly the checks that must fail (every other check over that scope must pass)
and a fragment of the message a person reads. The faults include the adversary's consistent
rewrites (bytes changed and every hash inside the storage root recomputed to match), which only
the seal in the instance's event log (``unchanged_since_materialization``) can catch.
``docs/reliability.md`` lists these rows with the faults tested elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from wmtp_assets.defs.checks import ALL_CHECKS
from wmtp_assets.graph_runs import Revalidation, verify_everything
from wmtp_assets.settings import Settings
from wmtp_assets_tests.defs.storage_faults import (
    config_rewritten_consistently,
    dataset_link_removed,
    eval_problem_removed,
    eval_tests_emptied,
    flipped_weights_byte,
    header_dtype_i16,
    header_duplicate_key,
    index_line_moved,
    infinity_resealed,
    jsonl_field_renamed,
    layer_count_changed_resealed,
    metadata_deleted,
    metadata_not_json,
    model_link_removed,
    output_rewritten_consistently,
    over_long_output_resealed,
    raw_checkpoint_flipped,
    raw_record_deleted,
    raw_refetched_other_bytes,
    raw_shard_flipped,
    raw_shard_unlisted,
    reward_raw_relaid_out,
    rope_theta_contradicts_freqs,
    small_line_changed,
    statement_dropped,
    stats_count_changed,
    stats_deleted,
    stats_not_json,
    task_id_duplicated_resealed,
    tokenizer_flipped,
    valid_problem_copied_into_test,
    weights_rewritten_consistently,
)
from wmtp_assets_tests.defs.test_signature_checks import SIGNATURE_FAULTS

SEALED = "unchanged_since_materialization"


@contextmanager
def _root_instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """The instance the demo recorded its runs in (``<root>/dagster_home``), as a newcomer's."""
    with dg.DagsterInstance.from_config(str(settings.storage_root / "dagster_home")) as instance:
        yield instance


def _revalidate(
    settings: Settings,
    models: list[str] | None,
    partitions: list[str] | None,
    instance_home: Path | None = None,
) -> Revalidation:
    if instance_home is not None:
        instance_home.mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.from_config(str(instance_home)) as other:
            return verify_everything(settings, other, models=models, partitions=partitions)
    with _root_instance(settings) as instance:
        return verify_everything(settings, instance, models=models, partitions=partitions)


def _failed(result: Revalidation) -> dict[str, str]:
    return {f"{r.asset}:{r.check}": r.summary for r in result.rows if not r.passed}


@dataclass(frozen=True)
class Fault:
    corrupt: Callable[[Path], None]
    models: list[str]
    partitions: list[str]
    fails: set[str]
    says: str
    primary: str = ""
    """The check whose message holds ``says`` (default: the first of ``fails`` by key)."""


def _model(corrupt: Callable[[Path], None], model: str, fails: set[str], says: str) -> Fault:
    return Fault(corrupt, [model], [], {f"models/{model}:{c}" for c in fails}, says)


def _split(
    corrupt: Callable[[Path], None], part: str, fails: set[str], says: str, primary: str = ""
) -> Fault:
    return Fault(corrupt, [], [part], set(fails), says, primary)


FAULTS = {
    "flipped_weights_byte": _model(
        flipped_weights_byte, "micro_mtp", {"sha256_matches", SEALED}, "SHA256SUMS"
    ),
    "header_dtype_i16": _model(
        header_dtype_i16,
        "micro_ref",
        {"dtype_is_float16", "sha256_matches", SEALED},
        "I16",
    ),
    "weights_rewritten_consistently": _model(
        weights_rewritten_consistently, "micro_mtp", {SEALED}, "changed since materialization"
    ),
    "infinity_resealed": _model(
        infinity_resealed, "micro_ref", {"values_are_finite", "forward_pass", SEALED}, "Inf"
    ),
    "config_rewritten_consistently": _model(
        config_rewritten_consistently, "micro_mtp", {SEALED}, "config.json"
    ),
    "layer_count_changed_resealed": _model(
        layer_count_changed_resealed,
        "micro_ref",
        {"configs_agree", "keys_and_shapes_match_config", "size_matches_config", "forward_pass"}
        | {SEALED},
        "n_params",
    ),
    "metadata_deleted": _model(
        metadata_deleted,
        "micro_mtp",
        {"sha256_matches", "dtype_is_float16", "configs_agree", "forward_pass", SEALED},
        "metadata.json",
    ),
    "metadata_not_json": _model(
        metadata_not_json,
        "micro_mtp",
        {"sha256_matches", "dtype_is_float16", "configs_agree", "forward_pass", SEALED},
        "metadata.json",
    ),
    "tokenizer_flipped": _model(
        tokenizer_flipped,
        "micro_mtp",
        {"tokenizer_sha256_shared", "sha256_matches", SEALED},
        "tokenizer.model",
    ),
    "model_link_removed": _model(
        model_link_removed, "micro_mtp", {"trainer_path_of_model"}, "micro-mtp"
    ),
    "raw_checkpoint_flipped": Fault(
        raw_checkpoint_flipped,
        ["meta_llama_mtp"],
        [],
        {"models/meta_llama_mtp/raw:raw_matches_source", f"models/meta_llama_mtp/raw:{SEALED}"},
        "consolidated.pth",
    ),
    "rope_theta_contradicts_freqs": Fault(
        rope_theta_contradicts_freqs,
        ["meta_llama_mtp"],
        [],
        {"models/meta_llama_mtp/raw:upstream_files_agree", f"models/meta_llama_mtp/raw:{SEALED}"},
        "rope_theta is 500000.0 but consolidated.pth rope.freqs implies 10000",
        "models/meta_llama_mtp/raw:upstream_files_agree",
    ),
    "header_duplicate_key": _model(
        header_duplicate_key,
        "micro_mtp",
        {"values_are_finite", "sha256_matches", "dtype_is_float16", "keys_and_shapes_match_config"}
        | {"size_matches_config", "forward_pass", SEALED},
        "twice",
    ),
    "reward_raw_relaid_out": Fault(
        reward_raw_relaid_out,
        ["starling_rm_7b"],
        [],
        {f"models/starling_rm_7b/raw:{c}" for c in ("raw_keys_match_config", "raw_matches_source")}
        | {f"models/starling_rm_7b/raw:{SEALED}"},
        "21 tensors with no decoder",
    ),
    "raw_record_deleted": Fault(
        raw_record_deleted,
        ["meta_llama_mtp"],
        [],
        {"models/meta_llama_mtp/raw:raw_matches_source"},
        "SOURCE.json",
    ),
    "jsonl_field_renamed": _split(
        jsonl_field_renamed,
        "mbpp.test",
        {"datasets/processed:records_match_schema", "datasets/processed:token_limit_respected"}
        | {"datasets/stats:counts_match_stats", "datasets/small:small_is_subset"}
        | {"datasets/stats:statements_match_split", f"datasets/processed:{SEALED}"},
        "output",
    ),
    "stats_count_changed": _split(
        stats_count_changed,
        "codecontests.valid",
        {"datasets/stats:counts_match_stats", f"datasets/stats:{SEALED}"},
        "records",
    ),
    "stats_deleted": _split(
        stats_deleted,
        "mbpp.test",
        {"datasets/stats:counts_match_stats", f"datasets/stats:{SEALED}"}
        | {"datasets/stats:built_from_recorded_raw"}  # the stats record the raw bytes
        | {"datasets/processed:splits_disjoint"},  # it trusts digests its stats vouch for
        "test_stats.json",
    ),
    "stats_not_json": _split(
        stats_not_json,
        "mbpp.test",
        {"datasets/stats:counts_match_stats", f"datasets/stats:{SEALED}"}
        | {"datasets/stats:built_from_recorded_raw"}  # the stats record the raw bytes
        | {"datasets/processed:splits_disjoint"},  # it trusts digests its stats vouch for
        "test_stats.json",
    ),
    "output_rewritten_consistently": _split(
        output_rewritten_consistently,
        "mbpp.test",
        {f"datasets/{a}:{SEALED}" for a in ("processed", "problem_index", "stats", "small")},
        "changed since materialization",
    ),
    "task_id_duplicated_resealed": _split(
        task_id_duplicated_resealed,
        "mbpp.test",
        {"datasets/processed:task_ids_unique_and_labelled"}
        | {"datasets/problem_index:index_matches_records", "datasets/small:small_is_subset"}
        | {f"datasets/{a}:{SEALED}" for a in ("processed", "problem_index", "stats")},
        "task_id",
        "datasets/processed:task_ids_unique_and_labelled",
    ),
    "over_long_output_resealed": _split(
        over_long_output_resealed,
        "mbpp.test",
        {"datasets/processed:token_limit_respected", "datasets/small:small_is_subset"}
        | {f"datasets/{a}:{SEALED}" for a in ("processed", "problem_index", "stats")},
        "2048",
        "datasets/processed:token_limit_respected",
    ),
    "index_line_moved": _split(
        index_line_moved,
        "mbpp.test",
        {"datasets/problem_index:index_matches_records", f"datasets/problem_index:{SEALED}"},
        "line",
    ),
    "valid_problem_copied_into_test": _split(
        valid_problem_copied_into_test,
        "codecontests.test",
        {"datasets/processed:splits_disjoint", "datasets/stats:counts_match_stats"}
        | {"datasets/problem_index:index_matches_records"}
        | {f"datasets/{a}:{SEALED}" for a in ("processed", "problem_index", "stats")},
        "as codecontests.valid",
        "datasets/processed:splits_disjoint",
    ),
    "statement_dropped": _split(
        statement_dropped,
        "codecontests.test",
        {"datasets/stats:statements_match_split", f"datasets/stats:{SEALED}"},
        "test_statements.json: 1 statements",
    ),
    "small_line_changed": _split(
        small_line_changed,
        "mbpp.test",
        {"datasets/small:small_is_subset", f"datasets/small:{SEALED}"},
        "test_small.jsonl",
    ),
    "eval_problem_removed": _split(
        eval_problem_removed,
        "codecontests.valid",
        {"datasets/eval_problems:eval_problems_cover_split", f"datasets/eval_problems:{SEALED}"},
        "valid_eval.jsonl",
    ),
    "eval_tests_emptied": _split(
        eval_tests_emptied,
        "codecontests.valid",
        {"datasets/eval_tests:eval_tests_cover_split", f"datasets/eval_tests:{SEALED}"},
        "valid_tests.json",
    ),
    "dataset_link_removed": _split(
        dataset_link_removed, "mbpp.test", {"datasets/processed:trainer_path_of_dataset"}, "mbpp"
    ),
    "raw_shard_flipped": _split(
        raw_shard_flipped,
        "mbpp.test",
        {"datasets/raw:raw_matches_source", f"datasets/raw:{SEALED}"},
        "parquet",
    ),
    "raw_shard_unlisted": _split(
        raw_shard_unlisted,
        "mbpp.test",
        {"datasets/raw:raw_matches_source"},
        "test-00001-of-00002.parquet: in raw/ but not listed in SOURCE.json",
    ),
    "raw_refetched_other_bytes": _split(
        raw_refetched_other_bytes,
        "mbpp.test",
        {"datasets/stats:built_from_recorded_raw", f"datasets/raw:{SEALED}"},
        "built from test-00000-of-00001.parquet with SHA256",
        primary="datasets/stats:built_from_recorded_raw",
    ),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_fails_exactly_its_checks(copied_demo_storage: Settings, name: str) -> None:
    fault = FAULTS[name]
    fault.corrupt(copied_demo_storage.storage_root)
    result = _revalidate(copied_demo_storage, fault.models, fault.partitions)
    failed = _failed(result)
    assert set(failed) == fault.fails, "\n".join(f"{k}: {v}" for k, v in sorted(failed.items()))
    first = failed[fault.primary or min(fault.fails)]
    assert fault.says in first, first
    assert "\n" not in first  # one line a person reads
    assert result.failed_runs == (fault.partitions or ["models"])


def test_every_check_is_failed_by_some_fault() -> None:
    """Here or, for ``signature_valid`` (which needs a key), in ``test_signature_checks``."""
    faults = [*FAULTS.values(), *SIGNATURE_FAULTS.values()]
    caught = {key.rsplit(":", 1)[1] for fault in faults for key in fault.fails}
    every = {spec.name for checks in ALL_CHECKS for spec in checks.check_specs}
    assert every - caught == set()


def test_the_untouched_demo_storage_passes_every_check(copied_demo_storage: Settings) -> None:
    result = _revalidate(copied_demo_storage, None, None)
    assert _failed(result) == {}
    assert result.failed_runs == []
    checked = {r.check for r in result.rows}
    assert SEALED in checked and "raw_matches_source" in checked


def test_without_the_materializing_instance_nothing_is_sealed(
    copied_demo_storage: Settings, tmp_path: Path
) -> None:
    """Storage checked against an instance that never materialized it: every other check passes;
    the seal check says so (a warning, not a silent pass)."""
    result = _revalidate(copied_demo_storage, ["micro_mtp"], [], instance_home=tmp_path / "other")
    failed = _failed(result)
    assert set(failed) == {f"models/micro_mtp:{SEALED}"}
    assert failed[f"models/micro_mtp:{SEALED}"].startswith("not sealed:")
    assert "no materialization recorded" in failed[f"models/micro_mtp:{SEALED}"]
