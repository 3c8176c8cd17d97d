"""A training run's workdir: one writer at a time, and a run keeps its identity.

`claim(workdir, config)` is what a training process does before it writes
anything: the workdir must be (or become) a writable folder, no other process
may be training in it (`WorkdirLock`), and a run that has checkpoints may only
be resumed with a config that changes what `RESUMABLE` allows (steps, eval
cadence, logging, where the data sits); anything else (the model's shapes, the
dataset, the optimiser, the losses) fails before a file is touched, naming the
fields. Readers (--mode=evaluate, predict, retrieve) take no lock.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import socket
import tempfile
import time

from absl import logging
from etils import epath

from fashionnet_jax.errors import ConfigError, WorkdirError
from fashionnet_jax.training.runs import CONFIG_FILE

LOCK_FILE = "lock"

# Config fields a resumed run may change (fnmatch patterns over dotted paths).
RESUMABLE = (
    "stages.*.steps",
    "num_rounds",
    "eval_every_steps",
    "eval_at_start",
    "eval_batch_size",
    "log_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "profile_steps",
    "max_consecutive_nonfinite",
    "xla_flags",
    "mesh.*",
    "input.worker_count",
    "input.prefetch_buffer_size",
    "dataset.data_dir",
    "dataset.manual_dir",
    "dataset.synthetic_if_missing",
    # Read only when a run starts; a resumed run's checkpoint replaces the state.
    "init_from",
    "require_init_from",
    # An evaluation option: the checkpoints do not depend on it.
    "eval_flip_test",
)
# Fields added after runs were made, with the value that gives what those runs did:
# a run whose config.json lacks one resumes when the field holds that value.
ADDED_LATER = {
    "model.landmark_head": "regression",
    "loss.heatmap_sigma": 2.0,
    "eval_flip_test": False,
}


def is_local(path) -> bool:
  return "://" not in str(path)


def prepare(workdir) -> epath.Path:
  """The workdir as a writable folder (created if missing), or a one-line WorkdirError."""
  workdir = epath.Path(workdir)
  if not is_local(workdir):
    workdir.mkdir(parents=True, exist_ok=True)  # object stores: no permissions to check here
    return workdir
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f"--workdir {workdir}: exists and is not a folder")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f"--workdir {workdir}: cannot create it ({e.strerror or e})") from None
  if not writable(workdir):
    raise WorkdirError(
        f"--workdir {workdir}: not writable (read-only file system or " "permissions)"
    )
  return workdir


def writable(folder) -> bool:
  """Whether files can be created in `folder` (object stores: assumed). Tried, not
  inferred from permission bits: root ignores those, a read-only mount does not."""
  if not is_local(folder):
    return True
  try:
    with tempfile.TemporaryFile(dir=folder):
      return True
  except OSError:
    return False


class WorkdirLock:
  """One training process per workdir: an flock on WORKDIR/lock.

  The kernel releases an flock when its process dies (kill -9 included), so a
  stale lock file from a dead run is simply taken over; the file records the
  holder's host and pid for the message a second process prints.
  """

  def __init__(self, workdir):
    self.path = epath.Path(workdir) / LOCK_FILE
    self._fd = None

  def acquire(self) -> "WorkdirLock":
    if not is_local(self.path):
      logging.info(
          "%s: no lock on an object store; run one training process per workdir", self.path.parent
      )
      return self
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise WorkdirError(
          f"--workdir {self.path.parent}: another training process holds it "
          f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since "
          f"{holder.get('since', '?')}); wait for it to end or use another --workdir"
      ) from None
    previous = _read_holder(fd)
    if previous:
      logging.info(
          "%s: taking over the lock of an ended process (host %s, pid %s)",
          self.path,
          previous.get("host"),
          previous.get("pid"),
      )
    os.ftruncate(fd, 0)
    os.pwrite(
        fd,
        json.dumps(
            dict(
                host=socket.gethostname(), pid=os.getpid(), since=time.strftime("%Y-%m-%d %H:%M:%S")
            )
        ).encode(),
        0,
    )
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      os.ftruncate(self._fd, 0)  # no holder; the file stays (unlinking would race a taker)
      os.close(self._fd)  # closing releases the flock
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def _read_holder(fd) -> dict:
  try:
    return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
  except (ValueError, UnicodeDecodeError):
    return {}


def _flatten(tree, prefix="") -> dict:
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, list):
    items = ((str(i), v) for i, v in enumerate(tree))
  else:
    return {prefix: tree}
  out = {}
  for key, value in items:
    out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
  return out


def config_changes(previous: dict, config) -> list[str]:
  """'field: old -> new' for every field a resumed run may not change."""
  old = _flatten(previous)
  new = _flatten(json.loads(config.to_json_best_effort()))
  changes = []
  for key in sorted(set(old) | set(new)):
    if old.get(key, ADDED_LATER.get(key, "<unset>")) == new.get(key, "<unset>"):
      continue
    if any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUMABLE):
      continue
    changes.append(f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}")
  return changes


def has_checkpoint(workdir) -> bool:
  folder = epath.Path(workdir) / "checkpoints"
  return folder.exists() and any(p.name.isdigit() for p in folder.iterdir())


def check_identity(workdir, config) -> None:
  """A run with checkpoints resumes only with a config its checkpoints fit."""
  path = epath.Path(workdir) / CONFIG_FILE
  if not (path.exists() and has_checkpoint(workdir)):
    return
  try:
    previous = json.loads(path.read_text())
  except ValueError as e:
    raise WorkdirError(f"{path}: not valid JSON ({e}); it records this run's config") from None
  changes = config_changes(previous, config)
  if changes:
    shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
    raise ConfigError(
        f"--workdir {workdir} is a run with another config ({shown}); resuming may only change "
        f"steps, eval cadence, logging and data paths: use a new --workdir, or fine-tune from "
        f"this run with --config.init_from={workdir}"
    )


def claim(workdir, config, *, writer: bool) -> WorkdirLock | None:
  """Before training writes anything: the identity guard, then (writer) folder and lock."""
  check_identity(workdir, config)
  if not writer:
    return None
  lock = WorkdirLock(prepare(workdir)).acquire()
  try:
    check_identity(workdir, config)  # again, now that no other process can write it
  except BaseException:
    lock.release()
    raise
  return lock
