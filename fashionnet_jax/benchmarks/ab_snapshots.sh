#!/usr/bin/env bash
# Copies of earlier commits' code for a side-by-side run on the lent GPU (gpu_run.sh
# benchmarks each beside the working tree, in the same call, on the same card).
#
#   bash fashionnet_jax/benchmarks/ab_snapshots.sh [--out DIR] NAME=COMMIT ...
#   bash fashionnet_jax/benchmarks/ab_snapshots.sh v1=cbfb921 v3=e9b7e49   # -> .bench_ref/v1, .bench_ref/v3
#
# Each snapshot holds fashionnet_jax/ and configs/ of COMMIT and a COMMIT file;
# DIR (default .bench_ref, ignored by git) is emptied first. Carry it to the device.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
out="$root/.bench_ref"
if [[ ${1:-} == --out ]]; then
  out=${2:?--out needs a directory}
  shift 2
fi
if (( $# == 0 )); then
  echo "usage: ab_snapshots.sh [--out DIR] NAME=COMMIT ..." >&2
  exit 2
fi
for spec in "$@"; do
  name=${spec%%=*} rev=${spec#*=}
  if [[ $name == "$spec" || -z $name || -z $rev || $name == */* ]]; then
    echo "error: expected NAME=COMMIT, got '$spec'" >&2
    exit 2
  fi
  if ! git -C "$root" rev-parse --verify --quiet "$rev^{commit}" > /dev/null; then
    echo "error: $name=$rev: no such commit" >&2
    exit 2
  fi
done
rm -rf "$out"
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%=*} rev=${spec#*=}
  mkdir -p "$out/$name"
  git -C "$root" archive "$rev" fashionnet_jax configs | tar -x -C "$out/$name"
  git -C "$root" rev-parse --short "$rev" > "$out/$name/COMMIT"
  echo "$out/$name: $(cat "$out/$name/COMMIT") $(git -C "$root" log -1 --format=%s "$rev")"
done
