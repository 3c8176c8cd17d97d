"""Model selection on the validation split: the best checkpoint by a named metric.

`BestCheckpoint(workdir, metric, mode)` keeps, under `workdir/best/`, the train
state of the step whose validation `metric` was best ('max' or 'min'), with the
step and every validation metric in its metadata, so a resumed run knows the best
so far. The final test evaluation restores it (train.py): the paper's protocol
of choosing on validation and reporting test once. `best/` holds one step, apart
from `checkpoints/`, so `keep_checkpoints` never prunes the selected model.

`selected(workdir)` reads that choice without writing: every reader of a run
(training.runs.load_run, hence the Predictor and the commands on it, `init_from=RUN`
and `--mode=evaluate`) loads the selected step by default, so what is deployed
is what was reported.
"""

from __future__ import annotations

import math

import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from fashionnet_jax.errors import ConfigError
from fashionnet_jax.training.checkpointing import Checkpointer

BEST_FOLDER = "best"
MODES = ("max", "min")


def selected(workdir) -> dict | None:
  """The run's selected step as {step, metric, value, validation}, or None when the run has
  no selection (no `select_metric`, or no validation yet). Opens `best/` read-only."""
  directory = epath.Path(workdir) / BEST_FOLDER
  if not directory.exists():
    return None
  ckpt = Checkpointer(
      workdir, every_steps=0, keep=1, async_save=False, folder=BEST_FOLDER, read_only=True
  )
  try:
    step = ckpt.latest_step()
    return None if step is None else _read_meta(ckpt, step)
  finally:
    ckpt.close()


def _read_meta(ckpt, step) -> dict:
  return ckpt.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


class BestCheckpoint:

  def __init__(self, workdir, metric: str, mode: str = "max"):
    if mode not in MODES:
      raise ConfigError(f"config.select_mode={mode!r}: use one of {', '.join(MODES)}")
    self.metric, self.mode = metric, mode
    self._ckpt = Checkpointer(workdir, every_steps=0, keep=1, async_save=False, folder=BEST_FOLDER)
    self.step, self.value = None, None
    step = self._ckpt.latest_step()
    if step is not None:
      meta = _read_meta(self._ckpt, step)
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
      raise ConfigError(
          f"config.select_metric={self.metric!r}: the validation evaluation has "
          f"no such metric; it has {', '.join(sorted(metrics))}"
      )
    value = float(metrics[self.metric])
    if not self._better(value):
      return False
    meta = dict(
        step=int(step),
        value=value,
        metric=self.metric,
        validation={k: float(v) for k, v in metrics.items() if math.isfinite(v)},
    )
    self._ckpt.save(step, state, None, meta, force=True)
    self._ckpt.wait()
    logging.info("best %s=%.4f at step %d (was %s)", self.metric, value, step, self.value)
    self.step, self.value = int(step), value
    return True

  def restore(self, abstract_state):
    return self._ckpt.restore_state_only(abstract_state, self.step)

  def close(self):
    self._ckpt.close()
