"""Assets of group ``datasets``, all partitioned by the seven ``<dataset>.<split>`` keys.

``datasets/processed``, ``datasets/problem_index`` and ``datasets/stats`` are one step (a
multi-asset): the pipeline publishes the JSONL, the index and the stats together so they always
describe the same bytes; each still has its own key, metadata and checks in the UI, and each
can be selected alone (``--select datasets/stats``): the step then still publishes all three
together (the pipeline is deterministic, so the unselected files are rewritten byte-identical)
and reports only what was selected, so no selection publishes half of a partition.

``datasets/eval_problems`` (``processed/<split>_eval.jsonl``) and ``datasets/eval_tests``
(``tests/<split>_tests.json``) are the CodeContests evaluation files, also one step. They are
partitioned like everything else (one backfill covers all); where a file does not apply (MBPP,
HumanEval, and ``codecontests.train`` for the eval JSONL), the partition materializes with
``applicable: false`` and writes nothing, so a backfill ends all green and no empty stand-in file
can be mistaken for data. Every step that publishes a dataset also makes its trainer path
(``<root>/datasets/<dataset>``, ``files.trainer_view``).
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from wmtp_assets.data.eval_files import EvalReport, write_eval_files
from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.data.pipeline import process_split
from wmtp_assets.data.small_subset import build_small_subset
from wmtp_assets.defs.executor import step_tags
from wmtp_assets.defs.explain import explained
from wmtp_assets.defs.metadata import (
    FRESHNESS,
    OWNERS,
    asset_tags,
    sealed_files,
    stats_entries,
)
from wmtp_assets.defs.models import TOKENIZER
from wmtp_assets.defs.raw_fetch import fetch_raw
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.signing import sign_partition, with_signatures
from wmtp_assets.files.trainer_view import link_dataset
from wmtp_assets.sources.provenance import RawSetError, listed_files

GROUP = "datasets"
PARTITIONS = dg.StaticPartitionsDefinition(list(PARTITION_KEYS))

RAW = dg.AssetKey(["datasets", "raw"])
PROCESSED = dg.AssetKey(["datasets", "processed"])
PROBLEM_INDEX = dg.AssetKey(["datasets", "problem_index"])
STATS = dg.AssetKey(["datasets", "stats"])
SMALL = dg.AssetKey(["datasets", "small"])
EVAL_PROBLEMS = dg.AssetKey(["datasets", "eval_problems"])
EVAL_TESTS = dg.AssetKey(["datasets", "eval_tests"])

PIPELINE_CODE_VERSION = (
    "alpaca-v3"  # v3: statements digests; the trainer's MBPP rows, CodeContests input ""
)


@dg.asset(
    key=RAW,
    group_name=GROUP,
    partitions_def=PARTITIONS,
    kinds={"huggingface", "parquet"},
    op_tags=step_tags("download"),
    owners=OWNERS,
    freshness_policy=FRESHNESS,
    tags=asset_tags("upstream"),
    description="`datasets_v2/<dataset>/raw/`: the split's upstream parquet shards at the pinned "
    "revision, SHA256-verified, with SOURCE.json.",
)
@explained
def datasets_raw(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
    part = Partition.parse(context.partition_key)
    dirs = wmtp.layout.dataset(part.dataset)
    result = fetch_raw(
        context,
        wmtp,
        part.spec.repo_id,
        "dataset",
        part.spec.revision,
        [part.spec.file_pattern(part.split)],
        dirs.raw,
    )
    return with_signatures(result, sign_partition(wmtp, part.key, [result.metadata or {}]))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PROCESSED,
            deps=[RAW, TOKENIZER],
            description="`datasets_v2/<dataset>/processed/<split>.jsonl` and `schema.json`: "
            "the split as Alpaca records, filtered to WMTP_MAX_TOKENS.",
            kinds={"jsonl"},
            owners=OWNERS,
            freshness_policy=FRESHNESS,
            tags=asset_tags("derived"),
        ),
        dg.AssetSpec(
            PROBLEM_INDEX,
            deps=[RAW, TOKENIZER],
            description="`datasets_v2/<dataset>/processed/<split>_metadata.json`: per problem, "
            "its difficulty and the line numbers and token lengths of its correct and incorrect "
            "records.",
            kinds={"json"},
            owners=OWNERS,
            freshness_policy=FRESHNESS,
            tags=asset_tags("derived"),
        ),
        dg.AssetSpec(
            STATS,
            deps=[RAW, TOKENIZER],
            description="`datasets_v2/<dataset>/stats/<split>_stats.json` (and the dated "
            "`<YYYY-MM-DD>_summary.json`): counts, labels, token-length percentiles and "
            "histogram, drops by reason; `<split>_statements.json`: digests of the split's "
            "problem statements (what disjointness of splits compares).",
            kinds={"json"},
            owners=OWNERS,
            freshness_policy=FRESHNESS,
            tags=asset_tags("derived"),
        ),
    ],
    group_name=GROUP,
    partitions_def=PARTITIONS,
    code_version=PIPELINE_CODE_VERSION,
    can_subset=True,
)
@explained
def datasets_processed(
    context: dg.AssetExecutionContext, wmtp: WmtpResource
) -> Iterator[dg.MaterializeResult[None]]:
    part = Partition.parse(context.partition_key)
    layout = wmtp.layout
    dirs = layout.dataset(part.dataset)
    settings = wmtp.settings
    _require(layout.shared_tokenizer, TOKENIZER)
    inputs = _raw_inputs(part, dirs.raw)
    context.log.info(f"processing {part} from {dirs.raw}")
    report = process_split(
        part,
        list(inputs),
        dirs,
        layout.shared_tokenizer,
        max_tokens=settings.max_tokens,
        expected_tokenizer_sha256=settings.tokenizer_sha256,
        lock_timeout_s=settings.lock_timeout_s,
        expected_sha256=inputs,
    )
    link = link_dataset(layout, part.dataset)
    stats = report.stats
    version = dg.DataVersion(report.jsonl_sha256[:16])
    processed: dg.MaterializeResult[None] = dg.MaterializeResult(
        asset_key=PROCESSED,
        metadata={
            "jsonl_path": dg.MetadataValue.path(str(report.jsonl)),
            "jsonl_size_bytes": dg.MetadataValue.int(report.jsonl.stat().st_size),
            "jsonl_sha256": dg.MetadataValue.text(report.jsonl_sha256),
            "records": dg.MetadataValue.int(stats.records),
            "correct": dg.MetadataValue.int(stats.correct),
            "incorrect": dg.MetadataValue.int(stats.incorrect),
            "schema_path": dg.MetadataValue.path(str(report.schema_file)),
            "seconds": dg.MetadataValue.float(report.seconds),
            "records_per_s": dg.MetadataValue.float(stats.records / max(report.seconds, 1e-9)),
            "processes": dg.MetadataValue.int(report.processes),
            "trainer_path": dg.MetadataValue.path(str(link)),
            **sealed_files(layout.root, [report.schema_file], {report.jsonl: report.jsonl_sha256}),
        },
        data_version=version,
    )
    index: dg.MaterializeResult[None] = dg.MaterializeResult(
        asset_key=PROBLEM_INDEX,
        metadata={
            "index_path": dg.MetadataValue.path(str(report.problem_index)),
            "index_size_bytes": dg.MetadataValue.int(report.problem_index.stat().st_size),
            "problems_indexed": dg.MetadataValue.int(stats.problems_indexed),
            "problems_read": dg.MetadataValue.int(stats.problems_read),
            **sealed_files(layout.root, [report.problem_index]),
        },
        data_version=version,
    )
    stats_result: dg.MaterializeResult[None] = dg.MaterializeResult(
        asset_key=STATS,
        metadata={
            "stats_path": dg.MetadataValue.path(str(report.stats_file)),
            "stats_size_bytes": dg.MetadataValue.int(report.stats_file.stat().st_size),
            "summary_path": dg.MetadataValue.path(str(report.summary_file)),
            "report": dg.MetadataValue.md(stats.markdown()),
            **stats_entries(stats),
            "statements_path": dg.MetadataValue.path(str(report.statements_file)),
            **sealed_files(layout.root, [report.stats_file, report.statements_file]),
        },
        data_version=version,
    )
    published = [r.metadata or {} for r in (processed, index, stats_result)]
    stats_result = with_signatures(stats_result, sign_partition(wmtp, part.key, published))
    yield from _selected(context, [processed, index, stats_result])


@dg.asset(
    key=SMALL,
    deps=[PROCESSED, PROBLEM_INDEX],
    group_name=GROUP,
    partitions_def=PARTITIONS,
    kinds={"jsonl"},
    code_version="small-v1",
    owners=OWNERS,
    freshness_policy=FRESHNESS,
    tags=asset_tags("subset"),
    description="`datasets_local_small/<dataset>_small/<split>_small.jsonl`: a seeded sample of "
    "the split (train <= 100, others <= 32) that keeps both labels for CodeContests; lines "
    "copied byte-for-byte.",
)
@explained
def datasets_small(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
    part = Partition.parse(context.partition_key)
    report = build_small_subset(part, wmtp.layout.dataset(part.dataset))
    result: dg.MaterializeResult[None] = dg.MaterializeResult(
        metadata={
            "small_path": dg.MetadataValue.path(str(report.path)),
            "small_size_bytes": dg.MetadataValue.int(report.path.stat().st_size),
            "records": dg.MetadataValue.int(report.records),
            "correct": dg.MetadataValue.int(report.correct),
            "incorrect": dg.MetadataValue.int(report.incorrect),
            "seed": dg.MetadataValue.int(report.seed),
            **sealed_files(wmtp.layout.root, [report.path]),
        },
        data_version=dg.DataVersion(report.source_jsonl_sha256[:16]),
    )
    return with_signatures(result, sign_partition(wmtp, part.key, [result.metadata or {}]))


def _require(path: Path, asset: dg.AssetKey) -> None:
    """Fail naming the asset to materialize when the file it provides is missing."""
    if not path.is_file():
        raise dg.Failure(
            description=f"{path}: missing; materialize {asset.to_user_string()} first",
            metadata={"file": str(path), "asset": asset.to_user_string()},
        )


def _raw_inputs(part: Partition, raw: Path) -> dict[Path, str]:
    """The split's shards with their recorded SHA256, when ``raw/`` holds exactly what its
    ``SOURCE.json`` lists for them (else a failure naming the file and the asset to rerun)."""
    try:
        return listed_files(raw, lambda path: part.spec.matches(path, part.split), part.claims)
    except RawSetError as exc:
        raise dg.Failure(
            description=f"{exc}; materialize {RAW.to_user_string()} for {part} again",
            metadata={"file": exc.file, "error_type": type(exc).__name__},
        ) from None


def _selected(
    context: dg.AssetExecutionContext, results: list[dg.MaterializeResult[None]]
) -> Iterator[dg.MaterializeResult[None]]:
    """The results of the keys this run selected (a subset of a multi-asset's keys); the
    others' files were rewritten all the same (one step publishes them together), so their new
    seals are recorded as materializations of those keys, or the next check would find the
    rewritten bytes 'changed since materialization'."""
    selected = context.selected_asset_keys
    for result in results:
        if result.asset_key in selected:
            yield result
        else:
            assert result.asset_key is not None
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=result.asset_key,
                    partition=context.partition_key,
                    metadata=result.metadata,
                )
            )


def _eval_file_result(
    root: Path, key: dg.AssetKey, path: Path | None, report: EvalReport
) -> dg.MaterializeResult:
    if path is None:
        return dg.MaterializeResult(
            asset_key=key,
            metadata={
                "applicable": dg.MetadataValue.bool(False),
                "note": dg.MetadataValue.text(
                    f"not applicable: {report.partition} has no such file"
                ),
                **sealed_files(root),
            },
        )
    return dg.MaterializeResult(
        asset_key=key,
        metadata={
            "applicable": dg.MetadataValue.bool(True),
            "file_path": dg.MetadataValue.path(str(path)),
            "size_bytes": dg.MetadataValue.int(path.stat().st_size),
            "problems": dg.MetadataValue.int(report.problems),
            "with_tests": dg.MetadataValue.json(report.with_tests),
            "replaced_problems": dg.MetadataValue.int(report.replaced_problems),
            "seconds": dg.MetadataValue.float(report.seconds),
            **sealed_files(root, [path]),
        },
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            EVAL_PROBLEMS,
            deps=[RAW, PROCESSED],
            description="`datasets_v2/codecontests/processed/<split>_eval.jsonl` (valid, test): "
            "one record per problem with its public, private and generated tests; not "
            "applicable elsewhere.",
            kinds={"jsonl"},
            owners=OWNERS,
            freshness_policy=FRESHNESS,
            tags=asset_tags("derived"),
        ),
        dg.AssetSpec(
            EVAL_TESTS,
            deps=[RAW, PROCESSED],
            description="`datasets_v2/codecontests/tests/<split>_tests.json`: every problem's "
            "tests by problem id (train streamed); not applicable to MBPP and HumanEval.",
            kinds={"json"},
            owners=OWNERS,
            freshness_policy=FRESHNESS,
            tags=asset_tags("derived"),
        ),
    ],
    group_name=GROUP,
    partitions_def=PARTITIONS,
    code_version="eval-v1",
    can_subset=True,
)
@explained
def datasets_eval(
    context: dg.AssetExecutionContext, wmtp: WmtpResource
) -> Iterator[dg.MaterializeResult[None]]:
    part = Partition.parse(context.partition_key)
    layout = wmtp.layout
    dirs = layout.dataset(part.dataset)
    report = write_eval_files(part, list(_raw_inputs(part, dirs.raw)), dirs)
    if report.tests_json is not None:
        link_dataset(layout, part.dataset)
    results = [
        _eval_file_result(layout.root, EVAL_PROBLEMS, report.eval_jsonl, report),
        _eval_file_result(layout.root, EVAL_TESTS, report.tests_json, report),
    ]
    if report.eval_jsonl is not None or report.tests_json is not None:
        sign_partition(wmtp, part.key, [r.metadata or {} for r in results])
    yield from _selected(context, results)


DATASET_ASSETS = [datasets_raw, datasets_processed, datasets_small, datasets_eval]
