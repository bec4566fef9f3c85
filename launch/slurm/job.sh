#!/usr/bin/env bash
# The body of launch/slurm/*.sbatch (their #SBATCH lines differ, nothing else): check the run, start one torchrun per
# node with srun (they meet in a c10d rendezvous on the first node), pass the time-limit warning on, requeue a job
# that was stopped. Run from the repository root (the sbatch scripts cd to SLURM_SUBMIT_DIR first).
#
# Environment: PYTHON (default .venv/bin/python), MAX_RESTARTS (torchrun restarts after a worker failure, default
# 3), MASTER_PORT (the rendezvous port on the first node, default 29500), TAME_DATA (see configs/*.yaml).
# Exit status: 0 when the run finished, or was stopped and requeued; 2 when the check found a problem; torchrun's
# status otherwise (1: a worker failed more than MAX_RESTARTS times). See launch/README.md, "Exit status".
set -euo pipefail
usage="usage: sbatch launch/slurm/train_1node.sbatch CONFIG [key=value ...]"
config=${1:?$usage}
shift
python=${PYTHON:-.venv/bin/python}
gpus=${SLURM_GPUS_ON_NODE:-4}
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
"$python" -m tame.cli train --check --nproc "$gpus" --config "$config" "$@"
# A stop signal to the workers (SLURM's preemption, `scancel --signal=TERM`, the time-limit warning below) makes
# every rank checkpoint the same step; rank 0 reports the stop in this file and the workers exit 0, so that torchrun
# does not restart them in place (it restarts only workers that fail: MAX_RESTARTS).
stopped=${TAME_PREEMPTED_FILE:-$PWD/.tame-stopped-$SLURM_JOB_ID}
rm -f "$stopped"
# 120 s before the time limit SLURM sends USR1 to this script (--signal=B:USR1@120); it is passed on as SIGTERM
# (srun -> torchrun -> every worker; torchrun kills them after TORCH_ELASTIC_SHUTDOWN_TIMEOUT).
warned=0
interrupted=0
step=
trap 'warned=1; interrupted=1; kill -TERM "$step" 2>/dev/null || true' USR1
TAME_PREEMPTED_FILE=$stopped TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-100} \
    srun --kill-on-bad-exit=1 "$python" -m torch.distributed.run \
    --nnodes="${SLURM_NNODES:-1}" --nproc_per_node="$gpus" --max-restarts="${MAX_RESTARTS:-3}" \
    --rdzv-backend=c10d --rdzv-endpoint="$head:${MASTER_PORT:-29500}" --rdzv-id="$SLURM_JOB_ID" \
    -m tame.cli train --config "$config" "$@" &
step=$!
while :; do  # the trap interrupts `wait`: then wait again for the step's own status
    interrupted=0
    status=0
    wait "$step" || status=$?
    [ "$interrupted" = 1 ] || break
done
# Stopped (the warning, or a signal to the workers: the file above, or exit 143 from workers srun started without
# torchrun): queue the job again; it resumes from that checkpoint (train.resume: auto). A finished run requeued this
# way ends at once.
if [ "$warned" = 1 ] || [ "$status" = 143 ] || [ -e "$stopped" ]; then
    rm -f "$stopped"
    echo "$0: stopped (step status $status$([ "$warned" = 1 ] && echo ', time-limit warning')): requeueing job $SLURM_JOB_ID" >&2
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
fi
exit "$status"
