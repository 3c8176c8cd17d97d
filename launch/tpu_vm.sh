#!/usr/bin/env bash
# Cloud TPU VM launcher for fashionnet_jax: create a TPU VM (one host or a pod
# slice), install the code on every worker, prepare the data, train in tmux,
# watch, resume after a spot preemption, delete.  See launch/README.md.
#
# Every subcommand takes --dry-run: it then prints the exact commands, one per
# line and shell-quoted, instead of running them.
#
# Remote commands are written in single quotes on purpose: "$HOME", "$USER" and
# $(hostname) must expand on the TPU worker, not here.
# shellcheck disable=SC2016
set -euo pipefail

readonly PROG=${0##*/}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly SESSION=fashionnet              # tmux session on every worker
readonly VENV='"$HOME/fashionnet_venv"'  # created by `setup` on every worker
readonly PY='"$HOME/fashionnet_venv/bin/python"'
readonly CODE='"$HOME/fashionnet_jax"'
readonly LOG_PATH='$HOME/fashionnet_train.log'
readonly LOG="\"$LOG_PATH\""
readonly SRC_TARBALL=fashionnet_jax_src.tgz
readonly MOUNT_ROOT=/mnt/gcs             # the bucket is mounted at /mnt/gcs/BUCKET
readonly DATA_PREFIX=tensorflow_datasets # gs://BUCKET/tensorflow_datasets = TFDS_DATA_DIR

usage() {
  cat <<EOF
usage: $PROG SUBCOMMAND [flags] [-- extra flags for fashionnet_jax.main]

Cloud TPU VM (single host such as v3-8, or a pod slice such as v4-32) for
fashionnet_jax.  Typical order: create, setup, data, train, logs, tensorboard,
then resume (after a spot preemption) and delete.

subcommands:
  create       create the TPU VM (--spot for spot capacity)
  setup        copy this checkout (or clone --repo) to every worker; install
               Python $PYTHON_VERSION, jax[tpu], tensorboard and the package
  data         tfds build the dataset here, upload it to gs://BUCKET/$DATA_PREFIX,
               mount the bucket read-only on every worker
  mount        mount gs://BUCKET read-only at $MOUNT_ROOT/BUCKET on every worker
  train        start training on every worker in tmux session '$SESSION'
  logs         follow the training log of one worker (--attach: the tmux session)
  tensorboard  run TensorBoard on worker 0, forwarded to localhost:PORT
  resume       after a preemption: recreate the TPU if it is gone or PREEMPTED,
               setup again, train again with the same workdir (restores the
               latest checkpoint)
  delete       delete the TPU VM (the bucket is kept)

Run '$PROG SUBCOMMAND --help' for the flags of one subcommand.  Every
subcommand takes --dry-run (print the commands, run nothing).
EOF
}

# Flags shared by the subcommands, with the environment variable each falls back to.
flag_help() {
  local f
  for f in "$@"; do
    case $f in
      name)        echo "  --name NAME            TPU VM name (TPU_NAME; default fashionnet)" ;;
      zone)        echo "  --zone ZONE            e.g. us-central1-a, europe-west4-a (TPU_ZONE)" ;;
      project)     echo "  --project PROJECT      GCP project (GCP_PROJECT; else gcloud's default project)" ;;
      accelerator) echo "  --accelerator TYPE     e.g. v3-8, v4-32, v5litepod-16, v5p-8, v6e-8 (TPU_ACCELERATOR)" ;;
      version)     echo "  --version VERSION      TPU software version (TPU_VERSION; default by generation:"
                   echo "                         v2-v4 tpu-ubuntu2204-base, v5e v2-alpha-tpuv5-lite,"
                   echo "                         v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e)" ;;
      spot)        echo "  --spot                 spot capacity: much cheaper, can be preempted (TPU_SPOT=1)" ;;
      bucket)      echo "  --bucket BUCKET        GCS bucket, with or without gs:// (GCS_BUCKET)" ;;
      config)      echo "  --config FILE          config file, relative to the repo (FASHIONNET_CONFIG;"
                   echo "                         default configs/tpu_v3.py)" ;;
      workdir)     echo "  --workdir gs://...     checkpoints and TensorBoard logs (FASHIONNET_WORKDIR)" ;;
      mode)        echo "  --mode train|evaluate  passed to fashionnet_jax.main (default train)" ;;
      restart)     echo "  --restart              stop a training already running in tmux first" ;;
      repo)        echo "  --repo URL             git clone URL on the workers instead of copying this"
                   echo "                         checkout (FASHIONNET_REPO); --ref BRANCH_OR_TAG" ;;
      python)      echo "  --python X.Y           Python for the workers' venv (default $PYTHON_VERSION)" ;;
      manual_dir)  echo "  --manual-dir DIR       the DeepFashion download (benchmark folders as released)" ;;
      data_dir)    echo "  --data-dir DIR         local TFDS data dir for the build (default ./tensorflow_datasets)" ;;
      dataset_config) echo "  --dataset-config NAME  category_attribute (default), inshop, consumer2shop, landmarks" ;;
      skip_build)  echo "  --skip-build           upload an already built --data-dir" ;;
      no_mount)    echo "  --no-mount             build and upload only (no TPU needed yet)" ;;
      worker)      echo "  --worker N             which worker (default 0)" ;;
      attach)      echo "  --attach               attach to the tmux session (detach: Ctrl-b d)" ;;
      port)        echo "  --port PORT            local and remote TensorBoard port (default 6006)" ;;
      if_preempted) echo "  --if-preempted         do nothing when the TPU is READY (for a cron/loop)" ;;
      dry_run)     echo "  --dry-run              print the commands instead of running them" ;;
    esac
  done
}

sub_flags() {
  case $1 in
    create)      echo name zone project accelerator version spot dry_run ;;
    setup)       echo name zone project repo python dry_run ;;
    data)        echo name zone project bucket manual_dir data_dir dataset_config skip_build no_mount dry_run ;;
    mount)       echo name zone project bucket dry_run ;;
    train)       echo name zone project bucket config workdir mode restart dry_run ;;
    logs)        echo name zone project worker attach dry_run ;;
    tensorboard) echo name zone project workdir port dry_run ;;
    resume)      echo name zone project accelerator version spot bucket config workdir mode repo python if_preempted dry_run ;;
    delete)      echo name zone project dry_run ;;
  esac
}

sub_help() {
  local -a flags
  read -r -a flags <<<"$(sub_flags "$1")"
  echo "usage: $PROG $1 [flags]$([[ $1 == train || $1 == resume ]] && echo ' [-- extra flags for fashionnet_jax.main]')"
  echo
  case $1 in
    create)      echo "Create the TPU VM.  Spot VMs are much cheaper; when preempted, 'resume' recreates them." ;;
    setup)       echo "On every worker: install tmux and gcsfuse, a Python venv ($VENV), jax[tpu],"
                 echo "tensorboard and this package (pip install -e).  Rerun it after a code change." ;;
    data)        echo "Build the TFDS dataset here (once; needs pip install -e '.[data]'), upload it to"
                 echo "gs://BUCKET/$DATA_PREFIX and mount the bucket read-only on every worker." ;;
    mount)       echo "Mount gs://BUCKET read-only at $MOUNT_ROOT/BUCKET on every worker (train does it too)." ;;
    train)       echo "Mount the data and start fashionnet_jax.main on every worker in tmux session"
                 echo "'$SESSION' (survives a dropped SSH connection); the log is $LOG_PATH." ;;
    logs)        echo "Follow the training log of one worker (Ctrl-C stops following, not training)." ;;
    tensorboard) echo "TensorBoard on worker 0 over the workdir; open http://localhost:PORT here." ;;
    resume)      echo "Check the TPU's state; if it is PREEMPTED, TERMINATED or gone: delete it, create"
                 echo "it again and rerun setup; then train again with the same workdir, which restores"
                 echo "the latest Orbax checkpoint." ;;
    delete)      echo "Delete the TPU VM.  The bucket (data, checkpoints, logs) is kept." ;;
  esac
  echo
  echo "flags:"
  flag_help "${flags[@]}"
}

die() { echo "error: $*" >&2; exit 2; }

# Shell-quote one word (bare when it is safe), so that printed commands can be
# pasted back into a shell and remote commands survive the remote shell.
q() {
  if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then printf '%s' "$1"
  else local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; fi
}

qall() { local out="" w; for w in "$@"; do out+="${out:+ }$(q "$w")"; done; printf '%s' "$out"; }

run() {
  if ((DRY_RUN)); then qall "$@"; echo; else "$@"; fi
}

note() { if ((DRY_RUN)); then echo "# $*"; else echo "$PROG: $*" >&2; fi; }

# ---------------------------------------------------------------- settings --

PYTHON_VERSION=3.11
NAME=${TPU_NAME:-fashionnet}
ZONE=${TPU_ZONE:-}
PROJECT=${GCP_PROJECT:-}
ACCELERATOR=${TPU_ACCELERATOR:-}
VERSION=${TPU_VERSION:-}
SPOT=0
case ${TPU_SPOT:-0} in 1 | true | yes) SPOT=1 ;; esac
BUCKET=${GCS_BUCKET:-}
CONFIG=${FASHIONNET_CONFIG:-configs/tpu_v3.py}
WORKDIR=${FASHIONNET_WORKDIR:-}
MODE=train
REPO=${FASHIONNET_REPO:-}
REF=""
MANUAL_DIR=""
DATA_DIR=tensorflow_datasets
DATASET_CONFIG=category_attribute
SKIP_BUILD=0
NO_MOUNT=0
WORKER=0
ATTACH=0
PORT=6006
RESTART=0
IF_PREEMPTED=0
DRY_RUN=0
EXTRA=()

parse_flags() {
  local sub=$1; shift
  local allowed
  allowed=" $(sub_flags "$sub") "
  while (($#)); do
    local arg=$1 flag value
    shift
    if [[ $arg == -- ]]; then
      [[ $sub == train || $sub == resume ]] || die "$sub takes no extra flags after --"
      EXTRA=("$@"); return
    fi
    [[ $arg == -h || $arg == --help ]] && { sub_help "$sub"; exit 0; }
    [[ $arg == --* ]] || die "unexpected argument '$arg' for $sub (see $PROG $sub --help)"
    flag=${arg%%=*}; flag=${flag#--}
    local key=${flag//-/_}
    [[ $flag == ref ]] && key=repo
    [[ $allowed == *" $key "* ]] || die "unknown flag --$flag for $sub (see $PROG $sub --help)"
    case $key in
      spot | restart | skip_build | no_mount | attach | if_preempted | dry_run)
        [[ $arg == *=* ]] && die "--$flag takes no value"
        case $key in
          spot) SPOT=1 ;; restart) RESTART=1 ;; skip_build) SKIP_BUILD=1 ;;
          no_mount) NO_MOUNT=1 ;; attach) ATTACH=1 ;; if_preempted) IF_PREEMPTED=1 ;;
          dry_run) DRY_RUN=1 ;;
        esac
        continue ;;
    esac
    if [[ $arg == *=* ]]; then value=${arg#*=}
    else (($#)) || die "--$flag needs a value"; value=$1; shift; fi
    case $flag in
      name) NAME=$value ;; zone) ZONE=$value ;; project) PROJECT=$value ;;
      accelerator) ACCELERATOR=$value ;; version) VERSION=$value ;;
      bucket) BUCKET=$value ;; config) CONFIG=$value ;; workdir) WORKDIR=$value ;;
      mode) MODE=$value ;; repo) REPO=$value ;; ref) REF=$value ;;
      python) PYTHON_VERSION=$value ;; manual-dir) MANUAL_DIR=$value ;;
      data-dir) DATA_DIR=$value ;; dataset-config) DATASET_CONFIG=$value ;;
      worker) WORKER=$value ;; port) PORT=$value ;;
    esac
  done
}

# require SUBCOMMAND SETTING...: one line naming the first missing setting.
require() {
  local sub=$1 key; shift
  for key in "$@"; do
    case $key in
      zone) [[ -n $ZONE ]] || die "--zone (or TPU_ZONE) is required for $sub" ;;
      name) [[ -n $NAME ]] || die "--name (or TPU_NAME) is required for $sub" ;;
      accelerator) [[ -n $ACCELERATOR ]] || die "--accelerator (or TPU_ACCELERATOR) is required for $sub" ;;
      bucket) [[ -n $BUCKET ]] || die "--bucket (or GCS_BUCKET) is required for $sub" ;;
      workdir) [[ -n $WORKDIR ]] || die "--workdir (or FASHIONNET_WORKDIR) is required for $sub"
               [[ $WORKDIR == gs://?* ]] || die "--workdir must be a gs:// path (every TPU worker writes to it), got '$WORKDIR'" ;;
      manual_dir) [[ -n $MANUAL_DIR ]] || die "--manual-dir (the DeepFashion download) is required for $sub (or --skip-build)"
                  ((DRY_RUN)) || [[ -d $MANUAL_DIR ]] || die "--manual-dir '$MANUAL_DIR' is not a directory" ;;
      project)
        if [[ -z $PROJECT ]]; then
          ((DRY_RUN)) && die "--project (or GCP_PROJECT) is required for $sub --dry-run (gcloud's default project is looked up only for real runs)"
          PROJECT=$(gcloud config get-value project 2>/dev/null || true)
          [[ -n $PROJECT ]] || die "--project (or GCP_PROJECT) is required for $sub: none given and gcloud has no default project"
        fi ;;
    esac
  done
}

check_settings() {
  [[ $NAME =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] || die "--name '$NAME' must be lower-case letters, digits and dashes, starting with a letter"
  BUCKET=${BUCKET#gs://}; BUCKET=${BUCKET%/}
  [[ -z $BUCKET || $BUCKET =~ ^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$ ]] || die "--bucket '$BUCKET' is not a bucket name (give the name only, e.g. my-bucket)"
  [[ $MODE == train || $MODE == evaluate ]] || die "--mode must be train or evaluate, got '$MODE'"
  [[ $WORKER =~ ^[0-9]+$ ]] || die "--worker must be a worker number, got '$WORKER'"
  [[ $PORT =~ ^[0-9]+$ ]] || die "--port must be a number, got '$PORT'"
  [[ $PYTHON_VERSION =~ ^3\.[0-9]+$ ]] || die "--python must look like 3.11, got '$PYTHON_VERSION'"
}

default_version() {
  [[ $ACCELERATOR =~ ^(v[0-9]+[a-z]*)-[0-9]+$ ]] || die "--accelerator '$ACCELERATOR' is not a TPU type such as v3-8, v4-32, v5litepod-16"
  [[ -n $VERSION ]] && return
  case ${BASH_REMATCH[1]} in
    v2 | v3 | v4) VERSION=tpu-ubuntu2204-base ;;
    v5litepod | v5e) VERSION=v2-alpha-tpuv5-lite ;;
    v5p) VERSION=v2-alpha-tpuv5 ;;
    v6e) VERSION=v2-alpha-tpuv6e ;;
    *) die "no default software version for $ACCELERATOR: pass --version (gcloud compute tpus tpu-vm versions list)" ;;
  esac
}

# ---------------------------------------------------------------- commands --

tpu() { run gcloud compute tpus tpu-vm "$1" "$NAME" --zone="$ZONE" --project="$PROJECT" "${@:2}"; }
on_all_workers() { tpu ssh --worker=all --command="$1"; }

mount_point() { echo "$MOUNT_ROOT/$BUCKET"; }

# Idempotent: a worker that already has the bucket mounted keeps it.
mount_command() {
  local m; m=$(q "$(mount_point)")
  echo "mountpoint -q $m || { sudo mkdir -p $m && sudo chown \"\$USER\" $m && gcsfuse -o ro --implicit-dirs $(q "$BUCKET") $m; }"
}

cmd_create() {
  require create zone project accelerator; default_version
  local -a spot=()
  ((SPOT)) && spot=(--spot)
  tpu create --accelerator-type="$ACCELERATOR" --version="$VERSION" "${spot[@]}"
}

cmd_setup() {
  require setup zone project
  local fetch
  if [[ -n $REPO ]]; then
    local -a branch=()
    [[ -n $REF ]] && branch=(--branch "$REF")
    fetch="rm -rf $CODE && git clone --depth 1 $(qall "${branch[@]}" "$REPO") $CODE"
  else
    local tarball=${TMPDIR:-/tmp}/$SRC_TARBALL
    run tar -czf "$tarball" --exclude=.git --exclude=.venv --exclude=__pycache__ \
      --exclude='*.egg-info' --exclude=tensorflow_datasets -C "$REPO_ROOT" .
    run gcloud compute tpus tpu-vm scp "$tarball" "$NAME:$SRC_TARBALL" --worker=all \
      --zone="$ZONE" --project="$PROJECT"
    fetch="rm -rf $CODE && mkdir -p $CODE && tar -xzf \"\$HOME/$SRC_TARBALL\" -C $CODE"
  fi
  local apt='sudo apt-get -o DPkg::Lock::Timeout=600 -qq'
  local uv='"$HOME/.local/bin/uv"'
  # Ubuntu 22.04 ships Python 3.10; jax and flax need >= 3.11, so uv provides it.
  # tensorflow-cpu lets TensorBoard (and TFDS) read gs:// paths.
  local steps=(
    "echo \"deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -c -s) main\" | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null"
    "curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null"
    "$apt update"
    "$apt install -y tmux gcsfuse"
    "python3 -m pip install --user --quiet --upgrade uv"
    "{ test -x $PY || $uv venv --python $(q "$PYTHON_VERSION") $VENV; }"
    "$fetch"
    "$uv pip install --python $PY --upgrade \"jax[tpu]\" tensorboard tensorflow-cpu -e $CODE"
    "$PY -c \"import jax, fashionnet_jax; print('worker', '\$(hostname)', 'jax', jax.__version__)\""
  )
  local joined="" s
  for s in "${steps[@]}"; do joined+="${joined:+ && }$s"; done
  on_all_workers "set -o pipefail && $joined"
}

cmd_data() {
  require data bucket
  ((SKIP_BUILD)) || require data manual_dir
  ((NO_MOUNT)) || require data zone project
  local data_dir=$DATA_DIR
  [[ $data_dir == /* ]] || data_dir=$PWD/$data_dir
  if ((!SKIP_BUILD)); then
    run tfds build "$REPO_ROOT/datasets/deepfashion" --manual_dir="$MANUAL_DIR" \
      --config="$DATASET_CONFIG" --file_format=array_record --data_dir="$data_dir"
  fi
  run gcloud storage rsync --recursive "$data_dir/deepfashion" "gs://$BUCKET/$DATA_PREFIX/deepfashion"
  ((NO_MOUNT)) || cmd_mount
}

cmd_mount() {
  require mount zone project bucket
  on_all_workers "$(mount_command) && ls $(q "$(mount_point)/$DATA_PREFIX/deepfashion")"
}

train_command() {
  local main
  main="export TFDS_DATA_DIR=$(q "$(mount_point)/$DATA_PREFIX") && cd $CODE"
  main+=" && $PY -m fashionnet_jax.main $(qall --config="$CONFIG" --workdir="$WORKDIR" --mode="$MODE" "${EXTRA[@]}")"
  main+=" 2>&1 | tee -a $LOG"
  local stop
  if ((RESTART)); then stop="{ tmux kill-session -t $SESSION 2>/dev/null || true; }"
  else stop="{ ! tmux has-session -t $SESSION 2>/dev/null || { echo \"\$(hostname): training is already running in tmux session $SESSION (use --restart)\"; exit 1; }; }"; fi
  echo "$(mount_command) && $stop && tmux new-session -d -s $SESSION $(q "$main") && echo \"\$(hostname): training started in tmux session $SESSION, log $LOG_PATH\""
}

cmd_train() {
  require train zone project bucket workdir
  if ((!DRY_RUN)) && [[ -z $REPO && ! -f $REPO_ROOT/$CONFIG ]]; then
    die "--config $CONFIG not found in $REPO_ROOT"
  fi
  on_all_workers "$(train_command)"
}

cmd_logs() {
  require logs zone project
  if ((ATTACH)); then tpu ssh --worker="$WORKER" --ssh-flag=-t --command="tmux attach -t $SESSION"
  else tpu ssh --worker="$WORKER" --command="tail -n 200 -F $LOG"; fi
}

cmd_tensorboard() {
  require tensorboard zone project workdir
  note "open http://localhost:$PORT"
  tpu ssh --worker=0 --command="\"\$HOME/fashionnet_venv/bin/tensorboard\" --logdir=$(q "$WORKDIR") --port=$(q "$PORT")" \
    -- -L "$PORT:localhost:$PORT"
}

cmd_delete() {
  require delete zone project
  tpu delete --quiet
}

cmd_resume() {
  require resume zone project accelerator bucket workdir; default_version
  local state
  if ((DRY_RUN)); then
    tpu describe --format='value(state)'
    note "if the state is PREEMPTED, TERMINATED or the TPU is gone, recreate it:"
    state=PREEMPTED
  else
    state=$(gcloud compute tpus tpu-vm describe "$NAME" --zone="$ZONE" --project="$PROJECT" \
      --format='value(state)' 2>/dev/null || true)
    note "TPU $NAME is ${state:-gone}"
  fi
  case $state in
    READY)
      ((IF_PREEMPTED)) && { note "nothing to do"; return; } ;;
    PREEMPTED | TERMINATED | STOPPED | "")
      [[ -n $state ]] && tpu delete --quiet
      cmd_create
      cmd_setup
      ((DRY_RUN)) && note "then train again from the latest checkpoint$( ((IF_PREEMPTED)) || echo ' (a READY TPU goes straight here)'):" ;;
    *) die "TPU $NAME is $state; run $PROG resume again once it settles" ;;
  esac
  RESTART=1
  cmd_train
}

main() {
  (($#)) || { usage >&2; exit 2; }
  local sub=$1; shift
  case $sub in
    -h | --help | help) usage; exit 0 ;;
    create | setup | data | mount | train | logs | tensorboard | resume | delete) ;;
    *) die "unknown subcommand '$sub' (one of create setup data mount train logs tensorboard resume delete)" ;;
  esac
  parse_flags "$sub" "$@"
  check_settings
  "cmd_$sub"
}

main "$@"
