#!/usr/bin/env bash
# fashionnet_jax on one machine with one or more GPUs: a single process, and JAX
# uses every visible GPU (the data axis of the mesh spans them).  Restrict the
# GPUs with CUDA_VISIBLE_DEVICES.  See launch/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=launch/gpu/common.sh
source "$ROOT/launch/gpu/common.sh"

usage() {
  cat <<EOF
usage: ${0##*/} --workdir DIR [flags] [-- flags for fashionnet_jax.main]

Train (or evaluate) on every GPU of this machine, in one process, from the
repository root $ROOT.

flags:
$(gpu_flag_help)
EOF
}

parse_gpu_flags usage "$@"
env_args=()
[[ -z $DATA_DIR ]] || env_args+=(TFDS_DATA_DIR="$DATA_DIR")
if ((DRY_RUN)); then
  echo "cd $(q "$ROOT") && $(qall "${env_args[@]}" "${MAIN[@]}")"
  exit 0
fi
cd "$ROOT"
[[ -f $CONFIG ]] || die "--config $CONFIG not found in $ROOT"
exec env "${env_args[@]}" "${MAIN[@]}"
