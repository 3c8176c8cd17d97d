#!/usr/bin/env bash
# Run by srun once per SLURM task (see slurm.sbatch): sets this process's part of
# the jax.distributed settings, then runs the command it is given.
#
# JAX's own SLURM detection would pin each process to GPU SLURM_LOCALID, which
# leaves all but one GPU idle when one process drives a whole node; so the
# local device ids are always given explicitly:
#   one task per node          -> every visible GPU: 0,1,...,N-1
#   one task per GPU, GPUs bound by SLURM (one visible) -> 0
#   one task per GPU, all GPUs visible                  -> SLURM_LOCALID
set -euo pipefail

die() { echo "error: $*" >&2; exit 2; }
[[ -n ${SLURM_PROCID:-} && -n ${SLURM_LOCALID:-} ]] || die "SLURM_PROCID/SLURM_LOCALID are not set: $0 runs under srun"
(($#)) || die "usage: $0 COMMAND [ARGS...]"

if [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
  IFS=, read -r -a visible <<<"$CUDA_VISIBLE_DEVICES"
  num_visible=${#visible[@]}
elif command -v nvidia-smi >/dev/null; then
  num_visible=$(nvidia-smi -L | grep -c '^GPU')
else
  die "no GPU visible on $(hostname): CUDA_VISIBLE_DEVICES is unset and nvidia-smi is missing"
fi
((num_visible > 0)) || die "no GPU visible on $(hostname)"

if ((${FASHIONNET_TASKS_PER_NODE:-1} == 1)); then
  ids=$(seq -s, 0 $((num_visible - 1)))
elif ((num_visible == 1)); then
  ids=0
else
  ids=$SLURM_LOCALID
fi

export FASHIONNET_PROCESS_ID=$SLURM_PROCID
export FASHIONNET_LOCAL_DEVICE_IDS=$ids
# The same for a plain jax.distributed.initialize(), which reads these itself.
[[ -z ${FASHIONNET_COORDINATOR_ADDRESS:-} ]] || export JAX_COORDINATOR_ADDRESS=$FASHIONNET_COORDINATOR_ADDRESS
export JAX_LOCAL_DEVICE_IDS=$ids
exec "$@"
