"""Dataset processing (core layer, no Dagster): upstream parquet -> Alpaca JSONL, index, stats.

Entry points per partition (``partitions.PARTITION_KEYS``): ``pipeline.process_split`` (JSONL,
the trainer-shaped problem index, split stats, ``schema.json``, dated summary),
``eval_files.write_eval_files`` (CodeContests evaluation files) and
``small_subset.build_small_subset``. One module per job: ``convert_<dataset>`` holds all field
mapping, ``split_keys`` the problem keys, ``token_count`` the tokenizer, ``jsonl_writer`` the
output files (``files.staging`` publishes them), ``stats``/``problem_index``/``schema``/``features``
the derived files, ``upstream_schema`` the input contract.
"""
