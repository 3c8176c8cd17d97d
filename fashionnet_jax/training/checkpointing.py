"""Orbax checkpoints of a training run: train state, grain iterator, stage metadata.

Saves are asynchronous (training goes on while the arrays are written), every
`config.checkpoint_every_steps` and at the end, keeping `config.keep_checkpoints`.
On start the newest checkpoint that restores is used, including the input
iterator, so a resumed run sees exactly the batches an uninterrupted run would.
A newer step that fails to restore (a truncated array file, a missing manifest
or item) is skipped with a warning naming it and why, and, when the caller
writes the run, moved aside to WORKDIR/damaged_checkpoints/ (never deleted).
Works with local and gs:// workdirs (etils.epath under Orbax).
"""

from __future__ import annotations

import time

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from fashionnet_jax import console
from fashionnet_jax.errors import FashionNetError, one_line

DAMAGED_FOLDER = "damaged_checkpoints"
# What Orbax warns about a read-only manager, all of it by design here: a reader saves
# nothing, keeps every step, and was asked for a read-only directory.
_READ_ONLY_WARNINGS = (
    "CheckpointManagerOptions.read_only=True, setting ",
    "Given directory is read only=",
)


class CheckpointError(FashionNetError):
  """No checkpoint of a run can be restored."""


class Checkpointer:

  def __init__(
      self,
      workdir,
      *,
      every_steps: int,
      keep: int,
      async_save: bool = True,
      folder: str = "checkpoints",
      read_only: bool = False,
  ):
    """`read_only`: a reader (evaluation, predict) that never writes into the run."""
    self.workdir = epath.Path(workdir)
    self.directory = self.workdir / folder
    self.every_steps = int(every_steps)
    self.read_only = read_only
    with console.drop_absl_warnings(*(_READ_ONLY_WARNINGS if read_only else ())):
      self.manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=int(keep),
              create=not read_only,
              read_only=read_only,
              enable_async_checkpointing=async_save,
          ),
          item_names=("state", "data", "meta"),
      )

  def latest_step(self):
    return self.manager.latest_step()

  def should_save(self, step: int) -> bool:
    return self.every_steps > 0 and step % self.every_steps == 0

  def save(self, step: int, state, data_iterator, meta: dict, *, force: bool = False):
    """Starts an async save of `state` (a pytree of jax.Arrays) at `step`."""
    args = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    if data_iterator is not None:
      args["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    return self.manager.save(step, args=ocp.args.Composite(**args), force=force)

  def restore(self, abstract_state, data_iterator, step=None):
    """Restores into the shapes/shardings of `abstract_state`; returns (state, meta)."""
    if step is None:
      return self.restore_newest(lambda s: self.restore(abstract_state, data_iterator, s))[1]
    args = dict(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
    if data_iterator is not None:
      args["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**args))
    return restored["state"], restored["meta"]

  def restore_state_only(self, abstract_state, step=None):
    """The train state alone (evaluation, predict): no iterator needed."""
    if step is None:
      return self.restore_newest(lambda s: self.restore_state_only(abstract_state, s))[1]
    restored = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
    )
    return restored["state"]

  def restore_newest(self, restore):
    """(step, restore(step)) for the newest step that restores; (None, None) if none exist.

    A damaged step raises whatever its reader meets (tensorstore, JSON, a missing
    item), so every exception counts as damage here; it is reported, and an older
    step restoring into the same target shows that the target was not the cause.
    """
    failures = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        result = restore(step)
      except Exception as e:  # noqa: BLE001 (re-raised below when no step restores)
        logging.warning(
            "%s/%d cannot be restored, skipping it: %s", self.directory, step, one_line(e)[:300]
        )
        failures.append((step, e))
        continue
      if failures:
        self._set_aside([s for s, _ in failures])
        logging.warning("Restored step %d instead of step %d.", step, failures[0][0])
      return step, result
    if failures:
      step, error = failures[0]
      raise CheckpointError(
          f"{self.directory}: no checkpoint restores (newest, step {step}: "
          f"{one_line(error)[:200]})"
      ) from error
    return None, None

  def _set_aside(self, steps):
    """Moves damaged steps out of Orbax's sight, keeping their files."""
    if self.read_only or jax.process_index() != 0:
      return
    target = self.workdir / DAMAGED_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for step in steps:
      dest = target / f"{step}"
      if dest.exists():
        dest = target / f"{step}.{time.strftime('%Y%m%d-%H%M%S')}"
      (self.directory / str(step)).rename(dest)
      logging.warning("Moved the damaged step %d to %s.", step, dest)
    self.manager.reload()

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(tree, shardings):
  """ShapeDtypeStructs with the given shardings: Orbax's restore target."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
  )
