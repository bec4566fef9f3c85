#!/usr/bin/env bash
# Every GPU number of the benchmarks in one command, under 8 minutes, on one lent H100 / H200 (no internet needed).
#
#   bash benchmarks/gpu.sh                  # results in $OUT/gpu when $OUT is set, else benchmarks/results/gpu
#   QUICK=1 bash benchmarks/gpu.sh          # a short smoke run: fewer steps, no torch.compile
#   DEVICE=cpu bash benchmarks/gpu.sh       # a smoke test of this script without a GPU (tiny sizes, no targets)
#   PYTHON=/path/to/python BUDGET=470 RESULTS=/some/dir DATA=/tmp/jpegs bash benchmarks/gpu.sh
#
# Steps, each bounded by `timeout` and all together by BUDGET seconds (a failed or skipped step is reported, the
# others still run); each step's full output is kept in RESULTS/<step>.log:
#   1. synthetic ImageNet-sized JPEGs (benchmarks.jpegs) in DATA (~200 MB; deliberately not under RESULTS/$OUT)
#   2. loaders: DALI `mixed` (GPU decoding) vs the PIL fallback, images/s on those JPEGs (benchmarks.loaders)
#   3. TAME training images/s end to end, JPEG -> loader -> tame.engine.train (benchmarks.throughput): ResNet-50 and
#      VGG-16 at 224 px, bf16 + channels_last, without and with torch.compile, peak GPU memory
#   4. AD/IC evaluation images/s at batch 64 vs the reference's one-image loop (benchmarks.evaluation)
#   5. peak GPU memory of one training step, TAME vs its limit vs all K maps (benchmarks.memory)
#   6. explanation latency per image vs a bare forward (benchmarks.latency)
#   7. a TAME training step beside timm's own ResNet-50 training step, same batch, bf16, channels_last, in one
#      process: the ratio tame / timm (benchmarks.timm_step)
#   8. explanation latency, torch on the GPU vs the exported ONNX graph in ONNX Runtime (benchmarks.export --device)
#   9. one table of everything (benchmarks.summary -> RESULTS/summary.json)
#
# Dependencies: torch with CUDA, timm, numpy, pillow, pyyaml, tqdm (and pytorch-grad-cam for step 6); `tame` is
# imported from this checkout (PYTHONPATH). DALI is optional: when `nvidia.dali` does not import and .whl/ holds
# wheels (on a machine with internet: `pip download nvidia-dali-cuda120 -d .whl`, ~0.5 GB, so it travels by
# shared storage, not with the repository), they are installed from there with --no-index; without DALI the PIL
# loader is used for the end-to-end numbers and the table says so.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
if [[ -z "${PYTHON:-}" ]]; then  # the checkout's venv if it fits the device, else the machine's python3
    PYTHON=python3
    if [[ -x .venv/bin/python ]] && { [[ $DEVICE == cpu ]] \
        || .venv/bin/python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; }; then
        PYTHON=.venv/bin/python
    fi
fi
RESULTS=${RESULTS:-${OUT:+$OUT/gpu}}
RESULTS=${RESULTS:-benchmarks/results/gpu}
DATA=${DATA:-${TMPDIR:-/tmp}/tame-bench-jpegs}
BUDGET=${BUDGET:-470}
QUICK=${QUICK:-0}
WORKERS=${WORKERS:-$(($(nproc) < 16 ? $(nproc) : 16))}
export TAME_BENCH_RESULTS=$RESULTS PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$RESULTS"
START=$(date +%s)
FAILED=()

log() { echo "[gpu.sh $(date +%H:%M:%S), $(($(date +%s) - START)) s] $*"; }

# step NAME SECONDS COMMAND...: run COMMAND with at most SECONDS (less when the budget is nearly spent)
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START)))
    if ((left < 30)); then
        log "SKIPPED $name: the ${BUDGET} s budget is spent"
        FAILED+=("$name (skipped)")
        return
    fi
    ((limit > left)) && limit=$left
    log "$name (at most $limit s): $*"
    timeout --signal=INT --kill-after=15 "$limit" "$@" >"$RESULTS/$name.log" 2>&1
    local rc=$?
    tr '\r' '\n' <"$RESULTS/$name.log" | grep -v -e 'step/s' -e '^\s*$' | tail -n 30
    if ((rc != 0)); then
        log "FAILED $name (exit $rc$( ((rc == 124)) && echo ', timed out')); full output in $RESULTS/$name.log"
        FAILED+=("$name")
    fi
}

log "python: $PYTHON; device: $DEVICE; results: $RESULTS; data: $DATA; budget ${BUDGET} s; quick=$QUICK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
DEVICE=$DEVICE "$PYTHON" - <<'EOF' || { log "the checks above failed: nothing measured"; exit 1; }
import importlib
import os
import sys

missing = [m for m in ("torch", "timm", "numpy", "PIL", "yaml", "tqdm") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)} (this machine has no internet: bring wheels in .whl/)")
import torch

if os.environ["DEVICE"] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device (DEVICE=cpu runs this script as a smoke test)")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
for module, use in (("nvidia.dali", "DALI GPU decoding"), ("pytorch_grad_cam", "Grad-CAM baselines (latency)")):
    found = importlib.util.find_spec(module.split(".")[0]) is not None
    print(f"{use}: {'available' if found else 'NOT installed'}")
EOF

if ! "$PYTHON" -c "import nvidia.dali" 2>/dev/null; then
    if compgen -G ".whl/nvidia_dali*.whl" >/dev/null; then
        log "installing DALI from .whl/ (no index)"
        "$PYTHON" -m pip install --quiet --no-index --find-links .whl nvidia-dali-cuda120 2>/dev/null \
            || "$PYTHON" -m pip install --quiet --no-index --find-links .whl nvidia-dali-cuda130 \
            || log "DALI wheels did not install: the PIL loader will be used"
    else
        log "DALI is not installed and .whl/ holds no wheels: the PIL loader will be used (see the header)"
    fi
fi

if [[ $DEVICE == cpu ]]; then
    IMAGES=64 STEPS=2 WARMUP=1 COMPILE="off" EVAL_IMAGES=8 BATCH=${BATCH:-4} LOADERS="dali-cpu torch"
    TINY=(--device cpu --quick) MEMORY=(--models resnet50)  # CPU memory: a fresh process per variant, slow here
    EXPORT=(--device cpu --quick)
elif ((QUICK)); then
    IMAGES=512 STEPS=5 WARMUP=3 COMPILE="off" EVAL_IMAGES=64 BATCH=${BATCH:-256} LOADERS="dali-mixed torch"
    TINY=(--device cuda) MEMORY=(--amp bf16 --channels-last) EXPORT=(--device cuda --repeats 5)
else
    IMAGES=2048 STEPS=30 WARMUP=8 COMPILE="off on" EVAL_IMAGES=128 BATCH=${BATCH:-256} LOADERS="dali-mixed torch"
    TINY=(--device cuda) MEMORY=(--amp bf16 --channels-last) EXPORT=(--device cuda)
fi

# shellcheck disable=SC2086  # LOADERS and COMPILE are lists
{
    step jpegs 60 "$PYTHON" -m benchmarks.jpegs "$DATA" --images "$IMAGES" --workers "$WORKERS"
    step loaders 60 "$PYTHON" -m benchmarks.loaders --list "$DATA/train-$IMAGES.txt" --root "$DATA" \
        --loaders $LOADERS --batch-size "$BATCH" --workers "$WORKERS" --epochs 2
    step throughput 270 "$PYTHON" -m benchmarks.throughput "${TINY[@]}" --batch-size "$BATCH" --steps "$STEPS" \
        --warmup "$WARMUP" --compile $COMPILE --workers "$WORKERS" --images "$IMAGES" --data "$DATA"
    step evaluation 45 "$PYTHON" -m benchmarks.evaluation "${TINY[@]}" --batch-size 64 --images "$EVAL_IMAGES"
    step memory 45 "$PYTHON" -m benchmarks.memory "${TINY[@]}" --batch-size "$BATCH" "${MEMORY[@]}"
    step latency 40 "$PYTHON" -m benchmarks.latency "${TINY[@]}" --repeats 30 --slow-repeats 3
    step timm_step 60 "$PYTHON" -m benchmarks.timm_step "${TINY[@]}" --batch-size "$BATCH"
    step export 60 "$PYTHON" -m benchmarks.export "${EXPORT[@]}"
}

echo
log "summary (every number measured in this run, on this machine):"
"$PYTHON" -m benchmarks.summary "$RESULTS"
if ((${#FAILED[@]})); then
    log "failed or skipped: ${FAILED[*]}"
    exit 1
fi
log "done in $(($(date +%s) - START)) s"
