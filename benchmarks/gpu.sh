#!/usr/bin/env bash
# Everything that needs a GPU, in one go (at most 8 minutes: each step has its time limit): ms per update of every agent at the
# paper preset in fp32, bf16 and with agent.compile (the Dreamer family; TD-MPC has no compile knob), the
# CUDA tests, and frames/s of a short whole run. Prints each table; exits non-zero if any step failed.
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

COMPILE_ROWS=$(cat <<'EOF'
import sys, torch, agents
from bench import speed
print(f"agent.compile=true  preset=paper device=cuda precision=fp32")
print(f"{'agent':<14}{'suite':<7}{'ms/update':>12}")
for name, suite in [("dreamerv2", "dmcr"), ("dreamerv3", "dmc"), ("harmonydream", "dmcr"), ("uw", "dmcr"),
                    ("dwa", "dmcr"), ("nashmtl", "dmcr"), ("dreamerpro", "dmc")]:
    config = agents.default_config(name, "paper", suite)["agent"]
    config["compile"] = True
    obs_space, act_space = speed.synthetic_spaces(["image"], 64, 0, 6, discrete=False)
    agent = agents.make(name, obs_space, act_space, config, torch.device("cuda"), suite)
    wall, _ = speed.time_updates(agent, obs_space, act_space, 2, 3)  # 2 warm-ups: the first compiles
    print(f"{name:<14}{suite:<7}{wall:>12.0f}", flush=True)
EOF
)

# label | seconds allowed | command
STEPS=(
  "cuda available|30|$PY -c 'import torch; assert torch.cuda.is_available(), \"no CUDA device\"; print(torch.cuda.get_device_name(0))'"
  "update speed fp32|90|$PY benchmarks/update_speed.py --device cuda --precision fp32 --warmup 2 --repeats 5"
  "update speed bf16|90|$PY benchmarks/update_speed.py --device cuda --precision bf16 --warmup 2 --repeats 5"
  "update speed compile|120|$PY -c \"\$COMPILE_ROWS\""
  "cuda tests|60|$PY -m pytest tests/test_cuda.py -q"
  "whole-run speed|90|$PY benchmarks/run_speed.py --device cuda --envs 1 4 --frames 800"
)

failed=()
for step in "${STEPS[@]}"; do
  IFS='|' read -r label limit command <<<"$step"
  if [[ $DRY == 1 ]]; then
    echo "# $label (limit ${limit} s)"
    [[ $label == "update speed compile" ]] && printf 'COMPILE_ROWS=%q\n' "$COMPILE_ROWS"
    echo "timeout $limit $command"
    continue
  fi
  if [[ $label == "whole-run speed" && ! -f benchmarks/run_speed.py ]]; then
    echo "== $label: benchmarks/run_speed.py is absent, skipped" && continue
  fi
  echo "== $label"
  started=$SECONDS
  COMPILE_ROWS=$COMPILE_ROWS timeout "$limit" bash -c "$command"
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
