#!/usr/bin/env bash
# The full-size 7B_1T_4 conversion on a GPU node, headless, WMTP_DEVICE=cuda, every check of the
# step included (the forward-pass check on the GPU): bench/full_size.py on a bare node.
#
# For a node with no network whose Python has torch, safetensors, sentencepiece, transformers
# and pyarrow but not Dagster: the missing wheels (Python 3.12, manylinux) travel in .whl/,
# fetched here by
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl <pins>
# with the versions of this project's venv (dagster and its closure, pydantic, pydantic-settings,
# httpx2). The mirror is built in /dev/shm when it has room (RAM, so the 64 GB disk holds raw/,
# the output and the cp baseline). Results: $OUT/full_size_meta.json and the log.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
nproc; free -g | head -2; df -h / /tmp /dev/shm | tail -n +1
python3 -c "import torch, dagster, wmtp_assets.definitions; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'dagster', dagster.__version__)" || exit 1
WORK=${WORK:-/tmp/wmtp-full}
MIRROR=/dev/shm
[ "$(df --output=avail -B1G /dev/shm | tail -1)" -gt 30 ] || MIRROR=$WORK
mkdir -p "$WORK"
python3 bench/full_size.py meta --workdir "$WORK" --mirror-dir "$MIRROR" --device cuda \
  --one-copy ${EXTRA_ARGS:-} 2>&1 | tee "$OUT/full_size_meta.log"
status=${PIPESTATUS[0]}
cp "$WORK/full_size_meta.json" "$OUT/" 2>/dev/null
exit "$status"
