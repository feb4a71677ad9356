#!/usr/bin/env bash
# One prepared check of minisegnet's GPU path, for a fresh machine with an NVIDIA GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root; about 5 minutes at most
#
# Steps (each under its own time limit, so the whole check stays within ~5 minutes):
#   0. environment: the GPU (nvidia-smi), CuPy and NVRTC; installs '.[test,gpu]' if CuPy is missing
#   1. pytest -m gpu           the device-parametrised suite on the real GPU (not the stand-in)
#   2. kernels vs twins        every RawKernel launched on the GPU and compared with its NumPy twin
#   3. bench_ops --device cuda       minisegnet against PyTorch CUDA (cuDNN), op by op
#   4. bench_train --device cuda     one training step against PyTorch CUDA
#   5. minisegnet train --device cuda for one minute (then Ctrl-C: the run saves and exits 130)
# and prints one table: step, status, seconds, the last line of its output. The full logs
# stay in $LOGDIR (default: a temporary folder, printed at the end). Exit status: 0 when
# steps 1, 2 and 5 passed (benchmarks only report).
#
# GPU_CHECK_DRY_RUN=1 runs the same steps on the CuPy stand-in (tests/cupy_standin, installed
# as `cupy` in every Python process through a sitecustomize), with a 15 s training run: it checks
# this script's plumbing on a machine without a GPU; its numbers mean nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
export MINISEGNET_STANDIN=0          # never fall back to the CuPy stand-in here: a real GPU or fail
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
    shim=$(mktemp -d)
    printf 'import sys\nsys.path.insert(0, %s)\nimport cupy_standin.select as s\nimport cupy_standin\ncupy_standin.install()\ns.register_package_twins()\n' \
        "'$PWD/tests'" >"$shim/sitecustomize.py"
    export PYTHONPATH="$shim:$PYTHONPATH"
    TRAIN_SECONDS=${TRAIN_SECONDS:-15}
fi
TRAIN_SECONDS=${TRAIN_SECONDS:-60}
PY=${PYTHON:-python3}
LOGDIR=${LOGDIR:-$(mktemp -d -t minisegnet-gpu-check-XXXX)}
declare -a ROWS=()
START=$(date +%s)

row() {  # row NAME STATUS SECONDS LOGFILE
    local detail
    detail=$(grep -v '^\s*$' "$4" 2>/dev/null | tail -n 1 | cut -c1-90)
    ROWS+=("$(printf '| %-26s | %-7s | %5s | %s |' "$1" "$2" "$3" "$detail")")
}

step() {  # step NAME LIMIT_SECONDS COMMAND...: run with a time limit, record a table row
    local name=$1 limit=$2; shift 2
    local log="$LOGDIR/$(echo "$name" | tr ' /' '__').log" t0 rc status
    t0=$(date +%s)
    echo "== $name (limit ${limit}s): $*"
    timeout -s INT -k 10 "$limit" "$@" >"$log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124|130) status=timeout ;;
        *) status="fail:$rc" ;;
    esac
    row "$name" "$status" "$(( $(date +%s) - t0 ))" "$log"
    return $rc
}

# ---- 0. environment -----------------------------------------------------------------------
ENVLOG="$LOGDIR/environment.log"
{
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not found"
    $PY -V
} >"$ENVLOG" 2>&1
if ! $PY -c "import cupy" >/dev/null 2>&1 && [ "${GPU_CHECK_NO_INSTALL:-0}" != 1 ]; then
    echo "== installing the test and gpu extras (CuPy with its CUDA toolkit wheels)"
    $PY -m pip install -q -e ".[test,gpu]" >>"$ENVLOG" 2>&1 || echo "pip install failed (offline?)" >>"$ENVLOG"
fi
$PY - >>"$ENVLOG" 2>&1 <<'EOF'
import minisegnet as ms
from minisegnet import backend
problem = backend.cuda_problem()
if problem:
    print("minisegnet: no usable CUDA device:", problem)
else:
    import cupy as cp
    cc = cp.cuda.Device(0).compute_capability
    print(f"minisegnet: CUDA usable, CuPy {cp.__version__}, compute capability {cc[:-1]}.{cc[-1]}, "
          f"NVRTC {'.'.join(map(str, cp.cuda.nvrtc.getVersion()))}")
try:
    import torch
    print(f"torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}")
except ImportError:
    print("torch: not installed (the benchmarks will skip)")
EOF
row "environment" "info" "$(( $(date +%s) - START ))" "$ENVLOG"
cat "$ENVLOG"
if ! $PY -c "import minisegnet as ms, sys; sys.exit(0 if ms.cuda.is_available() else 1)"; then
    echo "gpu_check: no usable CUDA device (see $ENVLOG); stopping"
    printf '%s\n' "${ROWS[@]}"
    exit 1
fi

# ---- 1.-5. --------------------------------------------------------------------------------
failed=0
step "pytest -m gpu" 110 $PY -m pytest -m gpu -q -p no:cacheprovider tests || failed=1
step "kernels vs twins" 20 $PY -m pytest -q -p no:cacheprovider tests/test_nvrtc.py -k twin_on_a_gpu || failed=1
step "bench_ops cuda" 45 $PY benchmarks/bench_ops.py --device cuda --quick --no-memory
step "bench_train cuda" 45 $PY benchmarks/bench_train.py --device cuda --quick --no-memory --models fcn,deeplabv3
RUN="$LOGDIR/train_run"
step "train --device cuda, ${TRAIN_SECONDS} s" "$TRAIN_SECONDS" $PY -m minisegnet train --device cuda --model fcn --epochs 1000 \
    --image-size 64 --batch-size 8 --no-progress --no-plots --out "$RUN"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 130 ]; then failed=1; fi
if [ ! -f "$RUN/last.npz" ]; then echo "gpu_check: the one-minute run saved no checkpoint"; failed=1; fi

# ---- the table ----------------------------------------------------------------------------
echo
echo "minisegnet GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - START )) s in all"
echo "| step                       | status  |     s | last line of output |"
echo "|----------------------------|---------|-------|---------------------|"
printf '%s\n' "${ROWS[@]}"
echo
echo "logs: $LOGDIR"
exit $failed
