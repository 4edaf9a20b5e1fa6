"""Every asset check, made by one factory from specs; thin wrappers over ``wmtp_assets.validate``.

A spec names the asset, the check (the name of the pure function in ``validate/`` whose
docstring becomes the description), its body and whether it blocks. Blocking checks are the
ones whose failure makes downstream work wrong: hashes, dtypes, keys and shapes, the shared
tokenizer, the record schema, task ids, the problem index and the evaluation files.

Dataset checks are partitioned like their assets (Dagster marks partitioned checks as a preview
feature and warns once; silenced here): materializing a partition runs that partition's checks,
and the ``revalidate`` job runs them per partition. In a revalidation run (tag
``wmtp/revalidation=true``) a failed check also fails its run, so cron, the run list and exit
codes show it; after a materialization a failed non-blocking check is reported only.
"""

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

import dagster as dg

from wmtp_assets.data.partitions import Partition
from wmtp_assets.defs.datasets import (
    EVAL_PROBLEMS,
    EVAL_TESTS,
    PARTITIONS,
    PROBLEM_INDEX,
    PROCESSED,
    SMALL,
    STATS,
)
from wmtp_assets.defs.k8s import k8s_op_tags
from wmtp_assets.defs.models import (
    META_SAFETENSORS,
    MICRO_MTP,
    MICRO_REF,
    SHEARED_SAFETENSORS,
)
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.validate import dataset_checks as dc
from wmtp_assets.validate import model_checks as mc
from wmtp_assets.validate import trainer_view as tv
from wmtp_assets.validate.outcome import CheckOutcome, guarded

REVALIDATION_TAG = "wmtp/revalidation"

Body = Callable[[WmtpResource, Partition | None], CheckOutcome]


@dataclass(frozen=True)
class CheckSpec:
    """One asset check: ``name`` is also the pure function in ``source`` that documents it."""

    asset: dg.AssetKey
    name: str
    body: Body
    source: ModuleType
    blocking: bool = False
    gpu: bool = False
    partitioned: bool = False


def to_check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """The outcome as a result a person reads: the summary, then every detail as metadata."""
    metadata: dict[str, dg.MetadataValue] = {"summary": dg.MetadataValue.text(outcome.summary)}
    for key, value in outcome.details.items():
        if isinstance(value, bool):
            metadata[key] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            metadata[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            metadata[key] = dg.MetadataValue.float(value)
        elif isinstance(value, str):
            metadata[key] = dg.MetadataValue.text(value)
        else:
            metadata[key] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary,
        metadata=metadata,
    )


def report_outcome(
    context: dg.AssetCheckExecutionContext, name: str, outcome: CheckOutcome
) -> Iterator[dg.AssetCheckResult]:
    """Yield the check result; in a revalidation run, then fail the step on a failed check.

    A failed asset check does not fail a Dagster run by itself; revalidation runs must.
    """
    yield to_check_result(outcome)
    if not outcome.passed and context.run.tags.get(REVALIDATION_TAG) == "true":
        raise dg.Failure(description=f"check {name} failed: {outcome.summary}")


def define_check(spec: CheckSpec) -> dg.AssetChecksDefinition:
    """The Dagster check for ``spec``: pool ``gpu`` and the GPU pod tags for GPU checks."""

    @dg.asset_check(  # type: ignore[arg-type]  # Dagster types the body as returning one result
        asset=spec.asset,
        name=spec.name,
        blocking=spec.blocking,
        partitions_def=PARTITIONS if spec.partitioned else None,
        pool="gpu" if spec.gpu else None,
        op_tags=k8s_op_tags("gpu_check") if spec.gpu else None,
        description=(getattr(spec.source, spec.name).__doc__ or "").strip(),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, wmtp: WmtpResource
    ) -> Iterator[dg.AssetCheckResult]:
        part = Partition.parse(context.partition_key) if spec.partitioned else None
        yield from report_outcome(context, spec.name, guarded(lambda: spec.body(wmtp, part)))

    return _check


def _model_specs(
    asset: dg.AssetKey, model: str, fmt: mc.ModelFormat, micro: bool = False
) -> list[CheckSpec]:
    """The checks every model artifact gets (micro models also their exact size)."""

    def dirs(w: WmtpResource) -> ModelDirs:
        return w.layout.model(model)

    def tokenizer_shared(w: WmtpResource, _: Partition | None) -> CheckOutcome:
        folders = [w.layout.model("meta_llama_mtp").tokenizer, dirs(w).tokenizer]
        vocab = {model: mc.stored_vocab_size(dirs(w), fmt)}
        return mc.tokenizer_sha256_shared(folders, w.settings.tokenizer_sha256, vocab)

    specs = [
        CheckSpec(asset, "sha256_matches", lambda w, _: mc.sha256_matches(dirs(w)), mc, True),
        CheckSpec(asset, "dtype_is_float16", lambda w, _: mc.dtype_is_float16(dirs(w)), mc, True),
        CheckSpec(asset, "values_are_finite", lambda w, _: mc.values_are_finite(dirs(w)), mc),
        CheckSpec(
            asset,
            "keys_and_shapes_match_config",
            lambda w, _: mc.keys_and_shapes_match_config(dirs(w), fmt),
            mc,
            True,
        ),
        CheckSpec(asset, "configs_agree", lambda w, _: mc.configs_agree(dirs(w), fmt), mc),
        CheckSpec(asset, "tokenizer_sha256_shared", tokenizer_shared, mc, True),
        CheckSpec(
            asset,
            "forward_pass",
            lambda w, _: mc.forward_pass(dirs(w), fmt, w.device),
            mc,
            gpu=True,
        ),
        CheckSpec(
            asset,
            "trainer_path_of_model",
            lambda w, _: tv.trainer_path_of_model(w.layout, model),
            tv,
        ),
    ]
    if micro:
        specs.append(
            CheckSpec(
                asset, "size_matches_config", lambda w, _: mc.size_matches_config(dirs(w), fmt), mc
            )
        )
    return specs


def _dataset_spec(
    asset: dg.AssetKey,
    name: str,
    body: Callable[[WmtpResource, Partition], CheckOutcome],
    blocking: bool = False,
) -> CheckSpec:
    def partitioned_body(w: WmtpResource, part: Partition | None) -> CheckOutcome:
        assert part is not None, "dataset checks run per partition"
        return body(w, part)

    return CheckSpec(asset, name, partitioned_body, dc, blocking, partitioned=True)


MODEL_CHECK_SPECS = [
    *_model_specs(MICRO_MTP, "micro_mtp", "meta_hf_config", micro=True),
    *_model_specs(MICRO_REF, "micro_ref", "hf_llama", micro=True),
    *_model_specs(META_SAFETENSORS, "meta_llama_mtp", "meta"),
    *_model_specs(SHEARED_SAFETENSORS, "ref_sheared_llama_2_7b", "hf_llama"),
]

DATASET_CHECK_SPECS = [
    _dataset_spec(
        PROCESSED,
        "records_match_schema",
        lambda w, p: dc.records_match_schema(
            w.layout.dataset(p.dataset), p, w.settings.tokenizer_sha256, w.settings.max_tokens
        ),
        blocking=True,
    ),
    _dataset_spec(
        PROCESSED,
        "task_ids_unique_and_labelled",
        lambda w, p: dc.task_ids_unique_and_labelled(w.layout.dataset(p.dataset), p),
        blocking=True,
    ),
    _dataset_spec(
        PROCESSED,
        "token_limit_respected",
        lambda w, p: dc.token_limit_respected(
            w.layout.dataset(p.dataset), p, w.layout.shared_tokenizer, w.settings.max_tokens
        ),
    ),
    _dataset_spec(PROCESSED, "splits_disjoint", lambda w, p: dc.splits_disjoint(w.layout, p)),
    _dataset_spec(
        PROCESSED,
        "trainer_path_of_dataset",
        lambda w, p: dc.trainer_path_of_dataset(w.layout, p),
    ),
    _dataset_spec(
        STATS,
        "counts_match_stats",
        lambda w, p: dc.counts_match_stats(w.layout.dataset(p.dataset), p),
    ),
    _dataset_spec(
        PROBLEM_INDEX,
        "index_matches_records",
        lambda w, p: dc.index_matches_records(w.layout.dataset(p.dataset), p),
        blocking=True,
    ),
    _dataset_spec(
        SMALL,
        "small_is_subset",
        lambda w, p: dc.small_is_subset(w.layout.dataset(p.dataset), p),
    ),
    _dataset_spec(
        EVAL_PROBLEMS,
        "eval_problems_cover_split",
        lambda w, p: dc.eval_problems_cover_split(w.layout.dataset(p.dataset), p),
        blocking=True,
    ),
    _dataset_spec(
        EVAL_TESTS,
        "eval_tests_cover_split",
        lambda w, p: dc.eval_tests_cover_split(w.layout.dataset(p.dataset), p),
        blocking=True,
    ),
]

MODEL_CHECKS = [define_check(spec) for spec in MODEL_CHECK_SPECS]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    DATASET_CHECKS = [define_check(spec) for spec in DATASET_CHECK_SPECS]
ALL_CHECKS = [*MODEL_CHECKS, *DATASET_CHECKS]
