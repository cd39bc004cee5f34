#!/usr/bin/env bash
# Everything that needs a GPU, in one go (at most 8 minutes: each step has its time limit): ms per update of every agent at the
# paper preset in fp32 and bf16 with the share of the GPU's matmul rate, DreamerV3 and HarmonyDream with
# agent.compile=scan + CUDA graphs (the first updates compile: warm-ups), the CUDA tests, and frames/s of a
# short whole DreamerV3 run at the paper's model and train ratio with 1 and 8 envs, eager and with CUDA
# graphs. Prints each table; exits non-zero if any step failed. (agent.compile=step:
# benchmarks/update_speed.py --compile step.)
#
#     bash benchmarks/gpu.sh          # run it (from the repository root, its .venv active or present)
#     bash benchmarks/gpu.sh --dry    # print the commands only
set -uo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [[ -z ${PYTHON:-} && -x .venv/bin/python ]]; then PY=.venv/bin/python; fi
export MUJOCO_GL=${MUJOCO_GL:-egl}

DRY=0
case "${1:-}" in
  --dry) DRY=1 ;;
  "") ;;
  *) echo "gpu.sh: unknown argument '$1'; valid: --dry" >&2; exit 2 ;;
esac


# label | seconds allowed | command
GRAPHS="--set agent.precision=bf16 --set agent.compile=scan --set agent.cuda_graphs=true"
STEPS=(
  "cuda available|15|$PY -c 'import torch; assert torch.cuda.is_available(), \"no CUDA device\"; print(torch.cuda.get_device_name(0))'"
  "update speed fp32|45|$PY benchmarks/update_speed.py --device cuda --precision fp32 --warmup 2 --repeats 5 --flops"
  "update speed bf16|45|$PY benchmarks/update_speed.py --device cuda --precision bf16 --warmup 2 --repeats 5 --flops"
  "update speed CUDA graphs|90|$PY benchmarks/update_speed.py --device cuda --precision bf16 --compile scan --cuda-graphs --rows dreamerv3 harmonydream --warmup 3 --repeats 5 --flops"
  "cuda tests|90|$PY -m pytest tests/test_cuda.py -q"
  "whole-run speed|95|$PY benchmarks/run_speed.py --device cuda --preset paper --agents dreamerv3 --envs 1 8 --frames 2048 --prefill 512"
  "whole-run speed, CUDA graphs|95|$PY benchmarks/run_speed.py --device cuda --preset paper --agents dreamerv3 --envs 8 --frames 2048 --prefill 512 $GRAPHS"
)

failed=()
for step in "${STEPS[@]}"; do
  IFS='|' read -r label limit command <<<"$step"
  if [[ $DRY == 1 ]]; then
    echo "# $label (limit ${limit} s)"
    echo "timeout $limit $command"
    continue
  fi
  if [[ $label == "whole-run speed" && ! -f benchmarks/run_speed.py ]]; then
    echo "== $label: benchmarks/run_speed.py is absent, skipped" && continue
  fi
  echo "== $label"
  started=$SECONDS
  timeout "$limit" bash -c "$command"
  code=$?
  echo "-- $label: exit $code after $((SECONDS - started)) s"
  [[ $code == 0 ]] || failed+=("$label (exit $code)")
done
[[ $DRY == 1 ]] && exit 0
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all GPU steps passed"
