"""Orbax checkpoints of a training run: train state, grain iterator, stage metadata.

Saves are asynchronous (training goes on while the arrays are written), every
`config.checkpoint_every_steps` and at the end, keeping `config.keep_checkpoints`.
On start the latest complete checkpoint is restored, including the input
iterator, so a resumed run sees exactly the batches an uninterrupted run would.
Works with local and gs:// workdirs (etils.epath under Orbax).
"""
from __future__ import annotations

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath


class Checkpointer:

  def __init__(self, workdir, *, every_steps: int, keep: int, async_save: bool = True,
               folder: str = "checkpoints"):
    self.directory = epath.Path(workdir) / folder
    self.every_steps = int(every_steps)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=int(keep), create=True, enable_async_checkpointing=async_save),
        item_names=("state", "data", "meta"))

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
    step = self.manager.latest_step() if step is None else step
    args = dict(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
    if data_iterator is not None:
      args["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**args))
    return restored["state"], restored["meta"]

  def restore_state_only(self, abstract_state, step=None):
    """The train state alone (evaluation, predict): no iterator needed."""
    step = self.manager.latest_step() if step is None else step
    restored = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    return restored["state"]

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(tree, shardings):
  """ShapeDtypeStructs with the given shardings: Orbax's restore target."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
