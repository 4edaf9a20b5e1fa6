"""Assets of group ``datasets``, all partitioned by the seven ``<dataset>.<split>`` keys.

``datasets/processed``, ``datasets/problem_index`` and ``datasets/stats`` are one step (a
multi-asset): the pipeline publishes the JSONL, the index and the stats together so they always
describe the same bytes; each still has its own key, metadata and checks in the UI.
"""

import dagster as dg

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.data.pipeline import process_split
from wmtp_assets.data.small_subset import build_small_subset
from wmtp_assets.defs.k8s import k8s_op_tags
from wmtp_assets.defs.model_assets import TOKENIZER
from wmtp_assets.defs.raw_fetch import fetch_raw
from wmtp_assets.defs.resources import WmtpResource

GROUP = "datasets"
PARTITIONS = dg.StaticPartitionsDefinition(list(PARTITION_KEYS))

RAW = dg.AssetKey(["datasets", "raw"])
PROCESSED = dg.AssetKey(["datasets", "processed"])
PROBLEM_INDEX = dg.AssetKey(["datasets", "problem_index"])
STATS = dg.AssetKey(["datasets", "stats"])
SMALL = dg.AssetKey(["datasets", "small"])

PIPELINE_CODE_VERSION = "alpaca-v1"


@dg.asset(
    key=RAW,
    group_name=GROUP,
    partitions_def=PARTITIONS,
    kinds={"huggingface", "parquet"},
    pool="download",
    op_tags=k8s_op_tags("download"),
    description="The split's upstream parquet shards at the pinned revision, SHA256-verified.",
)
def datasets_raw(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
    part = Partition.parse(context.partition_key)
    dirs = wmtp.layout.dataset(part.dataset)
    return fetch_raw(
        context,
        wmtp,
        part.spec.repo_id,
        "dataset",
        part.spec.revision,
        [part.spec.file_pattern(part.split)],
        dirs.raw,
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PROCESSED,
            deps=[RAW, TOKENIZER],
            description="Alpaca JSONL of the split, filtered to WMTP_MAX_TOKENS, with schema.json.",
            kinds={"jsonl"},
        ),
        dg.AssetSpec(
            PROBLEM_INDEX,
            deps=[RAW, TOKENIZER],
            description="<split>_metadata.json: per problem, its difficulty and the line numbers "
            "and token lengths of its correct and incorrect records.",
            kinds={"json"},
        ),
        dg.AssetSpec(
            STATS,
            deps=[RAW, TOKENIZER],
            description="Counts, labels, token-length percentiles and histogram, drops by reason.",
            kinds={"json"},
        ),
    ],
    group_name=GROUP,
    partitions_def=PARTITIONS,
    code_version=PIPELINE_CODE_VERSION,
)
def datasets_processed(context: dg.AssetExecutionContext, wmtp: WmtpResource):
    part = Partition.parse(context.partition_key)
    layout = wmtp.layout
    dirs = layout.dataset(part.dataset)
    settings = wmtp.settings
    context.log.info(f"processing {part} from {dirs.raw}")
    report = process_split(
        part,
        part.files_in(dirs.raw),
        dirs,
        layout.shared_tokenizer,
        max_tokens=settings.max_tokens,
        expected_tokenizer_sha256=settings.tokenizer_sha256,
        lock_timeout_s=3600,
    )
    stats = report.stats
    version = dg.DataVersion(report.jsonl_sha256[:16])
    yield dg.MaterializeResult(
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
        },
        data_version=version,
    )
    yield dg.MaterializeResult(
        asset_key=PROBLEM_INDEX,
        metadata={
            "index_path": dg.MetadataValue.path(str(report.problem_index)),
            "index_size_bytes": dg.MetadataValue.int(report.problem_index.stat().st_size),
            "problems_indexed": dg.MetadataValue.int(stats.problems_indexed),
            "problems_read": dg.MetadataValue.int(stats.problems_read),
        },
        data_version=version,
    )
    yield dg.MaterializeResult(
        asset_key=STATS,
        metadata={
            "stats_path": dg.MetadataValue.path(str(report.stats_file)),
            "stats_size_bytes": dg.MetadataValue.int(report.stats_file.stat().st_size),
            "summary_path": dg.MetadataValue.path(str(report.summary_file)),
            "report": dg.MetadataValue.md(stats.markdown()),
            "dropped": dg.MetadataValue.json(dict(stats.dropped)),
            "token_lengths": dg.MetadataValue.json(stats.token_lengths.model_dump()),
        },
        data_version=version,
    )


@dg.asset(
    key=SMALL,
    deps=[PROCESSED, PROBLEM_INDEX],
    group_name=GROUP,
    partitions_def=PARTITIONS,
    kinds={"jsonl"},
    code_version="small-v1",
    description="A seeded sample of the split (train <= 100, others <= 32) that keeps both "
    "labels for CodeContests; lines copied byte-for-byte.",
)
def datasets_small(context: dg.AssetExecutionContext, wmtp: WmtpResource) -> dg.MaterializeResult:
    part = Partition.parse(context.partition_key)
    report = build_small_subset(part, wmtp.layout.dataset(part.dataset))
    return dg.MaterializeResult(
        metadata={
            "small_path": dg.MetadataValue.path(str(report.path)),
            "small_size_bytes": dg.MetadataValue.int(report.path.stat().st_size),
            "records": dg.MetadataValue.int(report.records),
            "correct": dg.MetadataValue.int(report.correct),
            "incorrect": dg.MetadataValue.int(report.incorrect),
            "seed": dg.MetadataValue.int(report.seed),
        },
        data_version=dg.DataVersion(report.source_jsonl_sha256[:16]),
    )


DATASET_ASSETS = [datasets_raw, datasets_processed, datasets_small]
