# Shared by launch/gpu/single_node.sh and launch/gpu/slurm.sbatch (sourced, not run):
# flag parsing and the fashionnet_jax.main command line.
# shellcheck shell=bash
# The variables set here are read by the scripts that source this file.
# shellcheck disable=SC2034

die() { echo "error: $*" >&2; exit 2; }

# fashionnet_jax.main's exit status after SIGTERM once a checkpoint is saved
# (fashionnet_jax.errors.PREEMPTED_EXIT): the same command resumes the run.
PREEMPTED_EXIT=75

# Shell-quote one word (bare when safe) so printed commands paste back into a shell.
q() {
  if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then printf '%s' "$1"
  else local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; fi
}
qall() { local out="" w; for w in "$@"; do out+="${out:+ }$(q "$w")"; done; printf '%s\n' "$out"; }

# A local path relative to the caller's directory becomes absolute (the scripts
# run main from the repository root); gs:// and other URLs pass through unchanged.
absolute() { if [[ $1 == *://* || $1 == /* ]]; then printf '%s' "$1"; else printf '%s' "$PWD/$1"; fi; }

gpu_flag_help() {
  cat <<EOF2
  --workdir DIR          checkpoints and TensorBoard logs: a shared path or gs:// (FASHIONNET_WORKDIR)
  --config FILE          config file, relative to the repo (FASHIONNET_CONFIG; default configs/gpu.py)
  --data-dir DIR         TFDS data dir holding deepfashion/ (TFDS_DATA_DIR)
  --mode train|evaluate  passed to fashionnet_jax.main (default train)
  --python PYTHON        interpreter with fashionnet_jax installed (PYTHON; default python)
  --dry-run              print the command instead of running it
  -- FLAGS...            passed on to fashionnet_jax.main, e.g. --config.num_train_steps=1000
EOF2
}

# parse_gpu_flags USAGE_FUNCTION ARGS...: sets CONFIG WORKDIR DATA_DIR MODE PYTHON
# DRY_RUN EXTRA, and MAIN (the main command line as an array).
parse_gpu_flags() {
  local usage_fn=$1; shift
  CONFIG=${FASHIONNET_CONFIG:-configs/gpu.py}
  WORKDIR=${FASHIONNET_WORKDIR:-}
  DATA_DIR=${TFDS_DATA_DIR:-}
  MODE=train
  PYTHON=${PYTHON:-python}
  DRY_RUN=0
  EXTRA=()
  while (($#)); do
    local arg=$1 flag value; shift
    case $arg in
      --) EXTRA=("$@"); break ;;
      -h | --help) "$usage_fn"; exit 0 ;;
      --dry-run) DRY_RUN=1; continue ;;
      --workdir | --config | --data-dir | --mode | --python)
        (($#)) || die "$arg needs a value"; flag=$arg; value=$1; shift ;;
      --workdir=* | --config=* | --data-dir=* | --mode=* | --python=*)
        flag=${arg%%=*}; value=${arg#*=} ;;
      *) die "unknown argument '$arg' (see --help; flags for main go after --)" ;;
    esac
    case $flag in
      --workdir) WORKDIR=$value ;; --config) CONFIG=$value ;; --data-dir) DATA_DIR=$value ;;
      --mode) MODE=$value ;; --python) PYTHON=$value ;;
    esac
  done
  [[ -n $WORKDIR ]] || die "--workdir (or FASHIONNET_WORKDIR) is required"
  [[ $MODE == train || $MODE == evaluate ]] || die "--mode must be train or evaluate, got '$MODE'"
  WORKDIR=$(absolute "$WORKDIR")
  [[ -z $DATA_DIR ]] || DATA_DIR=$(absolute "$DATA_DIR")
  MAIN=("$PYTHON" -m fashionnet_jax.main --config="$CONFIG" --workdir="$WORKDIR" --mode="$MODE" "${EXTRA[@]}")
}
