"""Meta's multi-token-prediction Llama: ``args`` (hyperparameters and their file readers),
``model`` (the network) and ``kv_cache`` (incremental decoding)."""
