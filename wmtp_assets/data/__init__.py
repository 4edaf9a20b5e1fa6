"""Dataset processing (core layer, no Dagster): upstream parquet -> Alpaca JSONL, index, stats.

Entry points per partition (``partitions.PARTITION_KEYS``): ``pipeline.process_split`` (JSONL,
problem index, split stats, ``schema.json``, dated summary) and
``small_subset.build_small_subset``. One module per job: ``convert_<dataset>`` holds all field
mapping, ``token_count`` the tokenizer, ``jsonl_writer`` the output files (``files.staging``
publishes them), ``stats``/``problem_index``/``schema`` the derived files, ``upstream_schema``
the input contract.
"""
