#!/usr/bin/env bash
# Everything about the Triton kernels that needs a GPU, in at most 8 minutes of GPU time, written to
# benchmarks/RESULTS.md (commit that file).
#
#   bash benchmarks/gpu_check.sh                   # from anywhere, on a machine with a CUDA GPU, after `make install`
#   PYTHON=python3 bash benchmarks/gpu_check.sh    # another interpreter that has CUDA torch and the project installed
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # no GPU: every step on the CPU (Triton's interpreter), to
#                                                      # try changes to this script; the results go to /tmp
#
# The steps, each under its own time limit (together 7 min 40 s; most of a fresh machine's time goes to compiling
# kernels, which Triton caches on disk for the next step). A step that fails or runs out of time is reported and
# the next one runs; the exit status is 1 when any failed.
#   1. the device and the versions
#   2. the kernels' self-check in every dtype (python -m workbench.kernels.selfcheck), which also compiles them
#   3. the kernel tests, compiled for this GPU (tests/test_kernels_*.py, on 4 pytest workers where pytest-xdist is
#      installed), among them the capture of a Lion and an AdamW8bit step in a CUDA graph, replayed against eager
#      steps that must not synchronise with the device
#   4. benchmarks/kernels.py --quick, and the targets of the kernels checked on its table
set -u -o pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DRY_RUN=${GPU_CHECK_DRY_RUN:-0}
RESULTS=${RESULTS:-benchmarks/RESULTS.md}
LIMIT_DEVICE=20 LIMIT_SELFCHECK=120 LIMIT_TESTS=180 LIMIT_BENCHMARK=140  # seconds
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

if [ "$DRY_RUN" = 1 ]; then
  RESULTS=/tmp/RESULTS.dry-run.md
  export TRITON_INTERPRET=1
  # the interpreter with a GPU's arithmetic (fma, bfloat16 rounding), as in the tests: else the self-check fails
  SELFCHECK=(-c "import sys; sys.path.insert(0, 'tests'); import triton_interpreter; triton_interpreter.fix();
from workbench.kernels.selfcheck_report import main; main()")
elif ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: $PYTHON sees no CUDA device (GPU_CHECK_DRY_RUN=1 runs the steps on the CPU)" >&2
  exit 1
else
  SELFCHECK=(-m workbench.kernels.selfcheck)
fi

LOGS=$(mktemp -d)
STARTED=$(date +%s)
FAILED=()

step() {  # step NAME LIMIT LOG COMMAND...: run COMMAND under LIMIT seconds, output to the terminal and LOG
  local name=$1 limit=$2 log=$3
  shift 3
  echo "== $name (at most ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "(stopped after ${limit} s)" | tee -a "$log"
  fi
  [ "$status" = 0 ] || FAILED+=("$name (exit status $status)")
}

step "device and versions" "$LIMIT_DEVICE" "$LOGS/device" "$PYTHON" - <<'EOF'
import platform, subprocess, torch, triton
print(f"- python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"triton {triton.__version__}")
if torch.cuda.is_available():
    major, minor = torch.cuda.get_device_capability()
    print(f"- {torch.cuda.get_device_name()}, compute capability {major}.{minor}, "
          f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.strip()
        print(f"- driver {driver}")
    except (OSError, subprocess.SubprocessError):
        pass
else:
    print("- no CUDA device: a dry run through Triton's interpreter")
EOF

step "self-check" "$LIMIT_SELFCHECK" "$LOGS/selfcheck" "$PYTHON" "${SELFCHECK[@]}"

WORKERS=()
[ "$DRY_RUN" = 1 ] || ! "$PYTHON" -c "import xdist" 2>/dev/null || WORKERS=(-n 4)
# not here: the compile report and the import check need no GPU (the default suite runs them)
step "kernel tests" "$LIMIT_TESTS" "$LOGS/tests" "$PYTHON" -m pytest -p no:cacheprovider -v -rfEs \
  ${WORKERS[@]+"${WORKERS[@]}"} tests/test_kernels_*.py --ignore=tests/test_kernels_compile.py \
  --ignore=tests/test_kernels_dispatch.py

BENCHMARK=(benchmarks/kernels.py --quick)
"$PYTHON" benchmarks/kernels.py --help 2>/dev/null | grep -q -- --quick || BENCHMARK=(benchmarks/kernels.py)
step "${BENCHMARK[*]}" "$LIMIT_BENCHMARK" "$LOGS/benchmark" "$PYTHON" "${BENCHMARK[@]}"

# The targets of the kernels, on the benchmark's rows: Lion and AdamW8bit at >= 80 % of the measured copy bandwidth,
# LightSB >= 3x eager (forward and backward; the target shape is N = 65536, K = 256, D = 64), SPD ahead of eigh
# ("x eager" is eigh's time over Newton-Schulz's).
"$PYTHON" - "$LOGS/benchmark" > "$LOGS/targets" <<'EOF'
import sys
targets = {  # (family, implementation): (column, least value)
    ("optimizer step", "triton"): ("% of peak", 80),
    ("lightsb lse", "triton"): ("x eager", 3),
    ("spd sqrt", "newton-schulz"): ("x eager", 1),
}
header, found = None, 0
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if "implementation" in cells:
        header = cells
    elif header and len(cells) == len(header) and (cells[0], cells[2]) in targets:
        column, bound = targets[cells[0], cells[2]]
        value = cells[header.index(column)]
        found += 1
        print(f"- {'met' if float(value.split()[0]) >= bound else 'MISSED'}: {cells[0]}, {cells[1]}, {cells[2]}: "
              f"{column} {value} (target: at least {bound})")
if not found:
    print("- no benchmark rows to check (see the benchmark's output above)")
EOF

SECONDS_TAKEN=$(( $(date +%s) - STARTED ))
{
  echo "# Kernel check on a GPU"
  echo
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  git diff --quiet HEAD 2>/dev/null || commit="$commit with local changes"
  echo "Written by \`bash benchmarks/gpu_check.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit," \
       "in ${SECONDS_TAKEN} s."
  if [ ${#FAILED[@]} -gt 0 ]; then
    echo; echo "Failed:"; printf -- '- %s\n' "${FAILED[@]}"
  fi
  echo; echo "## Device and versions"; echo; cat "$LOGS/device"
  echo; echo "## Self-check (python -m workbench.kernels.selfcheck)"; echo
  tail -n +3 "$LOGS/selfcheck"  # the table, below its line on the device
  echo; echo "## Kernel tests (pytest tests/test_kernels_*.py)"; echo
  echo "CUDA-graph capture of an optimizer step:"
  grep -E 'test_a_step_captured_in_a_cuda_graph' "$LOGS/tests" | grep -E 'PASSED|FAILED|SKIPPED|ERROR' |
    sed -E 's/\[gw[0-9]+\] *//; s/ *\[ *[0-9]+%\] */ /; s/^ *(.*[^ ]) *$/- \1/'
  echo; echo '```'; grep -E '^(FAILED|ERROR|SKIPPED)|(passed|failed|error).* in [0-9.]+s' "$LOGS/tests"; echo '```'
  echo; echo "## Benchmarks (${BENCHMARK[*]})"; echo
  grep -v '^# Kernel benchmarks' "$LOGS/benchmark"
  echo; echo "## Targets"; echo; cat "$LOGS/targets"
} > "$RESULTS"
echo "== wrote $RESULTS (${SECONDS_TAKEN} s)"
[ ${#FAILED[@]} = 0 ]
