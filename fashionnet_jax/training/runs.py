"""A finished (or running) training run read back from its workdir.

`load_run(workdir, step=None)` rebuilds the network from `workdir/config.json`
and restores the model variables (parameters and BatchNorm statistics) onto one
device, without the dataset or the optimiser's values. By default it loads the
run's model: the step chosen on validation (`best/`, training.selection) when
the run selects one, else the newest checkpoint that restores; a step (and
folder, `checkpoints` or `best`) names any other. The Predictor (inference, so
predict, retrieve, serve and export) and `config.init_from=WORKDIR` (fine-tuning
one benchmark from another) both read runs through it, so every reader loads the
model whose test numbers the run reported.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import ml_collections
from etils import epath

from fashionnet_jax.errors import FashionNetError, one_line
from fashionnet_jax.models import create_model
from fashionnet_jax.training.checkpointing import Checkpointer, abstract_like
from fashionnet_jax.training.optim import make_optimizer
from fashionnet_jax.training.schedule import Schedule
from fashionnet_jax.training.selection import BEST_FOLDER, selected
from fashionnet_jax.training.step import abstract_train_state

CONFIG_FILE = "config.json"
CHECKPOINTS_FOLDER = "checkpoints"


class RunNotFoundError(FashionNetError, FileNotFoundError):
  """No run (config.json) or no checkpoint where the user pointed."""


@dataclasses.dataclass(frozen=True)
class Run:
  workdir: epath.Path
  config: ml_collections.ConfigDict
  step: int
  params: Any  # pure dict of arrays, on one device
  model_state: Any
  folder: str = CHECKPOINTS_FOLDER  # where the step was read: checkpoints/ or best/
  selection: dict | None = None  # best/'s metadata when this is the step chosen on validation

  def describe(self) -> str:
    """One line: which step of which run, and why that one."""
    where = f"{self.workdir}/{self.folder}/{self.step}"
    if self.selection is not None:
      return (
          f"{where} (chosen on validation: {self.selection['metric']}="
          f"{float(self.selection['value']):.4f})"
      )
    return where


def is_run(path) -> bool:
  path = epath.Path(path)
  return path.is_dir() and (path / CONFIG_FILE).exists()


def read_config(workdir) -> ml_collections.ConfigDict:
  path = epath.Path(workdir) / CONFIG_FILE
  if not path.exists():
    raise RunNotFoundError(f"{path}: no training run here ({CONFIG_FILE} missing)")
  try:
    return ml_collections.ConfigDict(json.loads(path.read_text()))
  except ValueError as e:
    raise RunNotFoundError(f"{path}: not a readable run config ({one_line(e)})") from None


def model_fn(config):
  """The FashionNet of `config` as a constructor (what state creation and restores trace)."""
  seed = int(config.seed)
  return lambda: create_model(config.model, seed=seed)


def load_run(workdir, step=None, folder=None) -> Run:
  """The run's config and the model variables of one step.

  Args:
    workdir: the run folder.
    step: None for the run's model (the selected step, else the newest that restores).
    folder: with `step`, `checkpoints` or `best`; default `checkpoints`, or `best` when only
      the selection holds that step (keep_checkpoints pruned it from checkpoints/).
  """
  workdir = epath.Path(workdir)
  config = read_config(workdir)
  choice = selected(workdir)
  if step is None and folder is None and choice is not None:
    step, folder = int(choice["step"]), BEST_FOLDER
  if folder is None and step is not None:
    on_disk = (workdir / CHECKPOINTS_FOLDER / str(int(step))).exists()
    only_best = choice is not None and int(choice["step"]) == int(step)
    folder = BEST_FOLDER if only_best and not on_disk else CHECKPOINTS_FOLDER
  folder = folder or CHECKPOINTS_FOLDER
  if folder not in (CHECKPOINTS_FOLDER, BEST_FOLDER):
    raise RunNotFoundError(
        f"{workdir / folder}: not a checkpoint folder (use "
        f"{CHECKPOINTS_FOLDER}/ or {BEST_FOLDER}/)"
    )
  schedule = Schedule(config.stages, config.num_rounds)
  abstract = abstract_train_state(
      model_fn(config), make_optimizer(config, schedule.total_steps), int(config.seed)
  )
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = abstract_like(abstract, jax.tree.map(lambda _: device, abstract))
  ckpt = Checkpointer(
      workdir, every_steps=0, keep=1 << 30, async_save=False, folder=folder, read_only=True
  )
  try:
    if step is None:
      step, state = ckpt.restore_newest(lambda s: ckpt.restore_state_only(abstract, s))
      if step is None:
        raise RunNotFoundError(f"{workdir / folder}: no checkpoint")
    else:
      step = int(step)
      if step not in ckpt.manager.all_steps():
        raise RunNotFoundError(f"{workdir / folder / str(step)}: no such checkpoint")
      state = ckpt.restore_state_only(abstract, step)
  finally:
    ckpt.close()
  is_choice = folder == BEST_FOLDER or (choice is not None and int(choice["step"]) == step)
  return Run(
      workdir,
      config,
      int(step),
      state.params,
      state.model_state,
      folder,
      choice if is_choice else None,
  )
