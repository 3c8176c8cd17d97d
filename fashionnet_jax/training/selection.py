"""Model selection on the validation split: the best checkpoint by a named metric.

`BestCheckpoint(workdir, metric, mode)` keeps, under `workdir/best/`, the train
state of the step whose validation `metric` was best ('max' or 'min'), with the
step and every validation metric in its metadata, so a resumed run knows the best
so far. The final test evaluation restores it (train.py): the paper's protocol
of choosing on validation and reporting test once.
"""
from __future__ import annotations

import math

import orbax.checkpoint as ocp
from absl import logging

from fashionnet_jax.errors import ConfigError
from fashionnet_jax.training.checkpointing import Checkpointer

BEST_FOLDER = "best"
MODES = ("max", "min")


class BestCheckpoint:

  def __init__(self, workdir, metric: str, mode: str = "max"):
    if mode not in MODES:
      raise ConfigError(f"config.select_mode={mode!r}: use one of {', '.join(MODES)}")
    self.metric, self.mode = metric, mode
    self._ckpt = Checkpointer(workdir, every_steps=0, keep=1, async_save=False,
                              folder=BEST_FOLDER)
    self.step, self.value = None, None
    step = self._ckpt.latest_step()
    if step is not None:
      meta = self._ckpt.manager.restore(
          step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      self.step, self.value = int(meta["step"]), float(meta["value"])

  def _better(self, value: float) -> bool:
    if math.isnan(value):
      return False
    if self.value is None:
      return True
    return value > self.value if self.mode == "max" else value < self.value

  def consider(self, step: int, metrics: dict, state) -> bool:
    """Keeps `state` if its validation metrics are the best so far; returns whether it did."""
    if self.metric not in metrics:
      raise ConfigError(f"config.select_metric={self.metric!r}: the validation evaluation has "
                        f"no such metric; it has {', '.join(sorted(metrics))}")
    value = float(metrics[self.metric])
    if not self._better(value):
      return False
    meta = dict(step=int(step), value=value, metric=self.metric,
                validation={k: float(v) for k, v in metrics.items() if math.isfinite(v)})
    self._ckpt.save(step, state, None, meta, force=True)
    self._ckpt.wait()
    logging.info("best %s=%.4f at step %d (was %s)", self.metric, value, step, self.value)
    self.step, self.value = int(step), value
    return True

  def restore(self, abstract_state):
    return self._ckpt.restore_state_only(abstract_state, self.step)

  def close(self):
    self._ckpt.close()
