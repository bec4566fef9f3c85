#!/usr/bin/env bash
# Start `tame train` or `tame lr-find` on this machine: one process per GPU under torchrun (DDP, nccl).
#
#   GPUS=4 launch/torchrun.sh train configs/resnet50.yaml [key=value ...]
#   GPUS=1 launch/torchrun.sh lr-find configs/vgg16.yaml data.batch_size=64
#
# GPUS=1 (the default) runs one plain process: the GPU if there is one, else the CPU. GPUS>1 first checks the
# config, the data paths and the GPU count (one line and exit 2 on a mistake), then starts torchrun; on a
# machine without CUDA it starts GPUS CPU processes (gloo). Environment: PYTHON (default: python),
# MAX_RESTARTS (torchrun restarts after a failure, default 0; each restart resumes from the newest checkpoint),
# TAME_DATA (see configs/*.yaml).
# Exit status as `tame train`'s: 0 done, 2 a mistake found before the start, 143 stopped by SIGTERM / SIGUSR1 after
# writing a checkpoint (run the same command again to continue), 1 a worker failed (launch/README.md).
set -euo pipefail
usage="usage: GPUS=N $0 train|lr-find CONFIG [key=value ...]"
command=${1:?$usage}
config=${2:?$usage}
shift 2
gpus=${GPUS:-1}
python=${PYTHON:-python}
case "$command" in train|lr-find) ;; *) echo "$0: unknown command '$command'; $usage" >&2; exit 2 ;; esac
if ! [[ "$gpus" =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: GPUS=$gpus is not a positive number of processes" >&2
    exit 2
fi
if [ ! -f "$config" ]; then
    echo "$0: config file $config not found (available: $(ls configs/*.yaml 2>/dev/null | tr '\n' ' '))" >&2
    exit 2
fi
if [ "$gpus" -eq 1 ]; then
    exec "$python" -m tame.cli "$command" --config "$config" "$@"
fi
"$python" -m tame.cli "$command" --check --nproc "$gpus" --config "$config" "$@"  # lr-find takes its own options
# Workers stopped by SIGTERM / SIGUSR1 checkpoint their step and exit 0, so that torchrun does not restart them;
# rank 0 reports the stop in this file, and the script exits 143 as one process would.
stopped=$(mktemp -u "${TMPDIR:-/tmp}/tame-stopped.XXXXXX")
run=
interrupted=0
trap 'interrupted=1; kill -TERM "$run" 2>/dev/null || true' TERM USR1
trap 'interrupted=1' INT  # Ctrl-C reaches torchrun directly (same process group): wait for it to stop its workers
TAME_PREEMPTED_FILE=$stopped "$python" -m torch.distributed.run --standalone --nproc_per_node="$gpus" \
    --max-restarts="${MAX_RESTARTS:-0}" -m tame.cli "$command" --config "$config" "$@" &
run=$!
while :; do  # a trapped signal interrupts `wait`: then wait again for torchrun's own status
    interrupted=0
    status=0
    wait "$run" || status=$?
    [ "$interrupted" = 1 ] || break
done
if [ -e "$stopped" ]; then  # (a traceback above from torchrun itself, when the signal reached it, is expected)
    echo "$0: $(cat "$stopped")" >&2
    rm -f "$stopped"
    exit 143
fi
exit "$status"
