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

The checks of one step run together as one op (a ``multi_asset_check``), the GPU check apart in
pool ``gpu``: every op is a process (or a pod) with a start-up cost of its own, and one op per
check made a one-partition run of tiny data mostly start-ups. Every check is still its own
result, selectable alone.

Every asset also gets ``unchanged_since_materialization``: its files against the SHA256s its
latest materialization recorded in this instance's event log (``defs.metadata.sealed_files``),
so a rewrite outside Dagster fails even where it is consistent with every other file; and every
raw asset gets ``raw_matches_source``: its bytes re-hashed against ``raw/SOURCE.json``; a raw
model also ``upstream_files_agree``: its config against its checkpoint and tokenizer.
"""

import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType

import dagster as dg

from wmtp_assets.data.partitions import Partition
from wmtp_assets.defs.check_runner import Body, CheckInput, CheckSpec, run_step_checks
from wmtp_assets.defs.datasets import (
    DATASET_ASSETS,
    EVAL_PROBLEMS,
    EVAL_TESTS,
    PARTITIONS,
    PROBLEM_INDEX,
    PROCESSED,
    RAW,
    SMALL,
    STATS,
)
from wmtp_assets.defs.executor import step_tags
from wmtp_assets.defs.models import (
    META_RAW,
    META_SAFETENSORS,
    MICRO_MTP,
    MICRO_REF,
    MODEL_ASSETS,
    SHEARED_RAW,
    SHEARED_SAFETENSORS,
    STARLING_RAW,
    STARLING_SAFETENSORS,
    TOKENIZER,
)
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.reward_checks import reward_model_specs, reward_raw_spec
from wmtp_assets.defs.seal_checks import same_run_hashes, sealed_spec
from wmtp_assets.defs.signature_checks import (
    REVALIDATION_TAG,
    model_signature_spec,
    partition_signature_spec,
    skipped_signature_checks,
)
from wmtp_assets.files.hashing import shared_hashes
from wmtp_assets.files.layout import DatasetDirs, ModelDirs
from wmtp_assets.validate import dataset_checks as dc
from wmtp_assets.validate import eval_checks as ec
from wmtp_assets.validate import lineage_checks as lc
from wmtp_assets.validate import model_checks as mc
from wmtp_assets.validate import raw_checks as rc
from wmtp_assets.validate import split_checks as sc
from wmtp_assets.validate import trainer_view as tv
from wmtp_assets.validate.jsonl_pass import LineCheck, run_one
from wmtp_assets.validate.outcome import CheckOutcome, guarded


def to_check_result(outcome: CheckOutcome, key: dg.AssetCheckKey) -> dg.AssetCheckResult:
    """The outcome as a result a person reads: the summary, then every detail as metadata."""
    metadata: dict[str, dg.MetadataValue] = {"summary": dg.MetadataValue.text(outcome.summary)}
    for name, value in outcome.details.items():
        if isinstance(value, bool):
            metadata[name] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            metadata[name] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            metadata[name] = dg.MetadataValue.float(value)
        elif isinstance(value, str):
            metadata[name] = dg.MetadataValue.text(value)
        else:
            metadata[name] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return dg.AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=outcome.passed,
        severity=(
            dg.AssetCheckSeverity.WARN
            if outcome.severity == "warn"
            else dg.AssetCheckSeverity.ERROR
        ),
        description=outcome.summary,
        metadata=metadata,
    )


def _key(spec: CheckSpec) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(spec.asset, spec.name)


def _define_step_checks(step: str, specs: Sequence[CheckSpec]) -> dg.AssetChecksDefinition:
    """One op running ``specs`` (the checks of one step, all GPU or none) in order.

    Each selected check yields its result; in a revalidation run (tag ``wmtp/revalidation``)
    the op then fails if any failed, since a failed check does not fail a Dagster run by
    itself and revalidation runs must (after a materialization a failure is reported only).
    """
    gpu = specs[0].gpu
    partitioned = specs[0].partitioned
    assert all(s.gpu == gpu and s.partitioned == partitioned for s in specs), step
    by_key = {_key(spec): spec for spec in specs}

    @dg.multi_asset_check(
        name=f"{step}__{'gpu_checks' if gpu else 'checks'}",
        specs=[
            dg.AssetCheckSpec(
                spec.name,
                asset=spec.asset,
                blocking=spec.blocking,
                partitions_def=PARTITIONS if partitioned else None,
                description=(getattr(spec.source, spec.name).__doc__ or "").strip(),
            )
            for spec in specs
        ],
        can_subset=True,
        pool="gpu" if gpu else None,
        op_tags=step_tags("gpu_check") if gpu else None,
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, wmtp: WmtpResource
    ) -> Iterator[dg.AssetCheckResult]:
        part = Partition.parse(context.partition_key) if partitioned else None
        selected = [key for key in by_key if key in context.selected_asset_check_keys]
        skipped = skipped_signature_checks(context, wmtp, selected)
        selected = [key for key in selected if key not in skipped]

        def given(spec: CheckSpec) -> CheckInput:
            return CheckInput(wmtp, part, context.instance, spec.asset)

        # the step's checks read the same files: hash each once, none the writer just hashed
        seeds = same_run_hashes(
            context, {by_key[k].asset for k in selected}, part, wmtp.layout.root
        )
        with shared_hashes(seeds):
            chosen = [by_key[key] for key in selected]
            outcomes = (
                run_step_checks(chosen, given)
                if partitioned
                else {_key(s): guarded(partial(s.body, given(s))) for s in chosen}  # in order
            )
        failed: list[str] = []
        for key in selected:
            outcome = outcomes[key]
            yield to_check_result(outcome, key)
            if not outcome.passed:
                failed.append(f"{key.to_user_string()}: {outcome.summary}")
        if failed and context.run.tags.get(REVALIDATION_TAG) == "true":
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise dg.Failure(description=f"check {failed[0]}{more}")

    return _checks


def define_checks(
    specs: Sequence[CheckSpec], step_of: Mapping[dg.AssetKey, str]
) -> list[dg.AssetChecksDefinition]:
    """The ops for ``specs``: one per materializing step (``step_of`` an asset), GPU apart."""
    groups: dict[tuple[str, bool], list[CheckSpec]] = {}
    for spec in specs:
        groups.setdefault((step_of[spec.asset], spec.gpu), []).append(spec)
    return [_define_step_checks(step, group) for (step, _), group in groups.items()]


def _steps(assets: Sequence[dg.AssetsDefinition]) -> dict[dg.AssetKey, str]:
    """Which op materializes each asset (a multi-asset's assets share one)."""
    return {key: asset.node_def.name for asset in assets for key in asset.keys}


def _model_specs(
    asset: dg.AssetKey, model: str, fmt: mc.ModelFormat, micro: bool = False
) -> list[CheckSpec]:
    """The checks every model artifact gets (micro models also their exact size)."""

    def dirs(given: CheckInput) -> ModelDirs:
        return given.wmtp.layout.model(model)

    def tokenizer_shared(given: CheckInput) -> CheckOutcome:
        folders = [given.wmtp.layout.model("meta_llama_mtp").tokenizer, dirs(given).tokenizer]
        vocab = {model: mc.stored_vocab_size(dirs(given), fmt)}
        return mc.tokenizer_sha256_shared(folders, given.wmtp.settings.tokenizer_sha256, vocab)

    specs = [
        # First: its one pass over the weights also hashes them for sha256_matches and the seal.
        CheckSpec(asset, "values_are_finite", lambda c: mc.values_are_finite(dirs(c)), mc),
        CheckSpec(asset, "sha256_matches", lambda c: mc.sha256_matches(dirs(c)), mc, True),
        CheckSpec(asset, "dtype_is_float16", lambda c: mc.dtype_is_float16(dirs(c)), mc, True),
        CheckSpec(
            asset,
            "keys_and_shapes_match_config",
            lambda c: mc.keys_and_shapes_match_config(dirs(c), fmt),
            mc,
            True,
        ),
        CheckSpec(asset, "configs_agree", lambda c: mc.configs_agree(dirs(c), fmt), mc),
        CheckSpec(asset, "tokenizer_sha256_shared", tokenizer_shared, mc, True),
        CheckSpec(
            asset,
            "forward_pass",
            lambda c: mc.forward_pass(dirs(c), fmt, c.wmtp.device),
            mc,
            gpu=True,
        ),
        CheckSpec(
            asset,
            "trainer_path_of_model",
            lambda c: tv.trainer_path_of_model(c.wmtp.layout, model),
            tv,
        ),
        sealed_spec(asset),
        model_signature_spec(asset, model),
    ]
    if micro:
        specs.append(
            CheckSpec(
                asset, "size_matches_config", lambda c: mc.size_matches_config(dirs(c), fmt), mc
            )
        )
    return specs


def _dataset_spec(asset: dg.AssetKey, name: str, body: Body, blocking: bool = False) -> CheckSpec:
    return CheckSpec(asset, name, body, dc, blocking, partitioned=True)


def _raw_spec(asset: dg.AssetKey, model: str | None = None) -> CheckSpec:
    """``raw_matches_source`` on a model's raw asset, or (``model`` None) on ``datasets/raw``,
    where each partition re-hashes only its split's shards."""

    def model_raw(given: CheckInput) -> CheckOutcome:
        return rc.raw_matches_source(given.wmtp.layout.model(str(model)).raw)

    def split_raw(given: CheckInput) -> CheckOutcome:
        part = given.part
        return rc.raw_matches_source(
            given.wmtp.layout.dataset(part.dataset).raw,
            lambda path: part.spec.matches(path, part.split),
            part.claims,
        )

    body = model_raw if model else split_raw
    return CheckSpec(asset, "raw_matches_source", body, rc, True, partitioned=model is None)


def _upstream_spec(asset: dg.AssetKey, model: str, fmt: rc.UpstreamFormat) -> CheckSpec:
    """``upstream_files_agree`` on a converted model's raw asset (blocking: the conversion
    refuses contradicting files, and so must what builds on them)."""

    def agree(given: CheckInput) -> CheckOutcome:
        return rc.upstream_files_agree(given.wmtp.layout.model(model).raw, fmt)

    return CheckSpec(asset, "upstream_files_agree", agree, rc, True)


MODEL_CHECK_SPECS = [
    _raw_spec(META_RAW, "meta_llama_mtp"),
    _upstream_spec(META_RAW, "meta_llama_mtp", "meta"),
    sealed_spec(META_RAW),
    _raw_spec(SHEARED_RAW, "ref_sheared_llama_2_7b"),
    _upstream_spec(SHEARED_RAW, "ref_sheared_llama_2_7b", "hf_llama"),
    sealed_spec(SHEARED_RAW),
    sealed_spec(TOKENIZER),
    *_model_specs(MICRO_MTP, "micro_mtp", "meta_hf_config", micro=True),
    *_model_specs(MICRO_REF, "micro_ref", "hf_llama", micro=True),
    *_model_specs(META_SAFETENSORS, "meta_llama_mtp", "meta"),
    *_model_specs(SHEARED_SAFETENSORS, "ref_sheared_llama_2_7b", "hf_llama"),
    _raw_spec(STARLING_RAW, "starling_rm_7b"),
    reward_raw_spec(STARLING_RAW, "starling_rm_7b"),
    sealed_spec(STARLING_RAW),
    *reward_model_specs(
        _model_specs(STARLING_SAFETENSORS, "starling_rm_7b", "hf_llama"), "starling_rm_7b"
    ),
]


def _dirs(given: CheckInput) -> DatasetDirs:
    return given.wmtp.layout.dataset(given.part.dataset)


def _jsonl_spec(
    asset: dg.AssetKey,
    name: str,
    make: Callable[[CheckInput], LineCheck],
    source: ModuleType = dc,
    blocking: bool = False,
) -> CheckSpec:
    """A check that is a share of the step's one pass over the partition's JSONL."""

    def share(given: CheckInput) -> tuple[Path, LineCheck]:
        return _dirs(given).jsonl(given.part.split), make(given)

    def alone(given: CheckInput) -> CheckOutcome:
        return run_one(*share(given))

    return CheckSpec(asset, name, alone, source, blocking, partitioned=True, share=share)


DATASET_CHECK_SPECS = [
    _raw_spec(RAW),
    *(sealed_spec(a, partitioned=True) for a in (RAW, PROCESSED, PROBLEM_INDEX, STATS, SMALL)),
    *(sealed_spec(a, partitioned=True) for a in (EVAL_PROBLEMS, EVAL_TESTS)),
    _jsonl_spec(
        PROCESSED,
        "records_match_schema",
        lambda c: dc.SchemaLines(
            _dirs(c), c.part, c.wmtp.settings.tokenizer_sha256, c.wmtp.settings.max_tokens
        ),
        blocking=True,
    ),
    _jsonl_spec(
        PROCESSED,
        "task_ids_unique_and_labelled",
        lambda c: dc.TaskIdLines(_dirs(c), c.part),
        blocking=True,
    ),
    _jsonl_spec(
        PROCESSED,
        "token_limit_respected",
        lambda c: dc.TokenSampleLines(
            _dirs(c), c.part, c.wmtp.layout.shared_tokenizer, c.wmtp.settings.max_tokens
        ),
    ),
    CheckSpec(
        PROCESSED,
        "splits_disjoint",
        lambda c: sc.splits_disjoint(c.wmtp.layout, c.part),
        sc,
        partitioned=True,
    ),
    partition_signature_spec(PROCESSED),
    _dataset_spec(
        PROCESSED,
        "trainer_path_of_dataset",
        lambda c: dc.trainer_path_of_dataset(c.wmtp.layout, c.part),
    ),
    _jsonl_spec(STATS, "counts_match_stats", lambda c: dc.CountLines(_dirs(c), c.part)),
    CheckSpec(
        STATS,
        "built_from_recorded_raw",
        lambda c: lc.built_from_recorded_raw(_dirs(c), c.part),
        lc,
        partitioned=True,
    ),
    _jsonl_spec(STATS, "statements_match_split", lambda c: sc.StatementLines(_dirs(c), c.part), sc),
    _jsonl_spec(
        PROBLEM_INDEX,
        "index_matches_records",
        lambda c: dc.IndexLines(_dirs(c), c.part),
        blocking=True,
    ),
    _dataset_spec(SMALL, "small_is_subset", lambda c: dc.small_is_subset(_dirs(c), c.part)),
    CheckSpec(
        EVAL_PROBLEMS,
        "eval_problems_cover_split",
        lambda c: ec.eval_problems_cover_split(_dirs(c), c.part),
        ec,
        True,
        partitioned=True,
    ),
    CheckSpec(
        EVAL_TESTS,
        "eval_tests_cover_split",
        lambda c: ec.eval_tests_cover_split(_dirs(c), c.part),
        ec,
        True,
        partitioned=True,
    ),
]

MODEL_CHECKS = define_checks(MODEL_CHECK_SPECS, _steps(MODEL_ASSETS))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    DATASET_CHECKS = define_checks(DATASET_CHECK_SPECS, _steps(DATASET_ASSETS))
ALL_CHECKS = [*MODEL_CHECKS, *DATASET_CHECKS]
