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
"$python" -m tame.cli train --check --nproc "$gpus" --config "$config" "$@"
exec "$python" -m torch.distributed.run --standalone --nproc_per_node="$gpus" --max-restarts="${MAX_RESTARTS:-0}" \
    -m tame.cli "$command" --config "$config" "$@"
