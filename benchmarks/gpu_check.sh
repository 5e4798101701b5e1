#!/usr/bin/env bash
# GPU check of the sampling layer's batching and seeding logic, for a lent CUDA machine.
#
#   bash benchmarks/gpu_check.sh            (writes to $OUT, or /tmp/gpu_check_out without it)
#
# Needs only what that machine's image has (python3 with torch + transformers); no vLLM,
# no network, no weights: a tiny random-weight Llama is built from a config on CUDA.
# Each check is fail-soft; the whole run is bounded by `timeout` (GPU_CHECK_TIMEOUT_S,
# default 480 s, inside the 10-minute limit), and the JSON summary is rewritten after
# every check, so a timeout still leaves the finished checks in $OUT/gpu_check.json.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
{
  echo "== $(date -u +%FT%TZ) $(uname -srm)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1 || true
} | tee "$OUT/gpu_env.txt"
export PYTHONUNBUFFERED=1
timeout -k 10 "${GPU_CHECK_TIMEOUT_S:-480}" "$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo "gpu_check.py exited with $rc (124 = timed out); partial results in $OUT/gpu_check.json"
fi
exit "$rc"
