#!/usr/bin/env bash
# GPU check for a machine with one CUDA GPU (not runnable on the CPU-only development machines).
#
#   bash scripts/gpu_check.sh            # after: pip install -e ".[dev]" with a CUDA build of torch
#
# 1. the hf backend in bf16 on CUDA: seeded generation is reproducible, logprobs and scoring work;
# 2. one iteration of the verified-sft loop (sampling, verification, LoRA SFT in bf16, evaluation);
# 3. the generation benchmark (engine vs naive generate), which prints RESULT lines;
# 4. if vLLM is installed: the vllm: backend on the same checks as 1.
# Every step prints "CHECK <name> ok|FAILED"; the script exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
OUT="${GPU_CHECK_OUT:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
FAILED=0
check() {  # check NAME COMMAND...: run, log to $OUT/NAME.log, print one status line
  local name="$1"; shift
  echo "== $name: $*"
  if "$@" 2>&1 | tee "$OUT/$name.log"; then echo "CHECK $name ok"; else echo "CHECK $name FAILED (log: $OUT/$name.log)"; FAILED=1; fi
}

"$PY" - <<'PY' || { echo "CHECK cuda FAILED: torch sees no CUDA GPU (install a CUDA build of torch, see docs/gpu-and-clusters.md)"; exit 1; }
import torch
assert torch.cuda.is_available(), "no CUDA"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
PY
echo "CHECK cuda ok"

BACKEND_CHECK='
import sys
from selflab.models import load_model
from selflab.models.types import GenerationRequest
spec = sys.argv[1]
m = load_model(spec)
reqs = [GenerationRequest.chat(f"Count to {i}.", temperature=0.8, seed=i, max_new_tokens=24, logprobs=True) for i in range(8)]
a, b = m.generate(reqs), m.generate(list(reversed(reqs)))
assert all(x.error is None for x in a), [x.error for x in a]
assert [x.text for x in a] == [x.text for x in reversed(b)], "seeded sampling not reproducible across batch orders"
assert all(x.token_logprobs and len(x.token_logprobs) == x.completion_tokens for x in a)
s = m.score("The capital of France is", [" Paris", " a banana"])
assert s[0] > s[1], s
print(f"{spec}: {sum(x.completion_tokens for x in a)} tokens, score {s}")
'
check hf_bf16_cuda "$PY" -c "$BACKEND_CHECK" "smollm2-135m?device=cuda&dtype=bfloat16"

check loop_iteration "$PY" -m selflab.cli loop verified-sft --config configs/verified_sft_smoke.yaml \
  --set "model=smollm2-135m?device=cuda&dtype=bfloat16" --set report=false --out "$OUT/loop"

check generation_benchmark "$PY" benchmarks/generation.py --requests 64 --dtypes float32,bfloat16
grep -h "^RESULT" "$OUT/generation_benchmark.log" || true

if "$PY" -c "import vllm" 2>/dev/null; then
  check vllm_backend "$PY" -c "$BACKEND_CHECK" "vllm:smollm2-135m?gpu_memory_utilization=0.3"
else
  echo "CHECK vllm_backend skipped (pip install 'selflab[vllm]' to include it)"
fi
exit $FAILED
