"""A finished (or running) training run read back from its workdir.

`load_run(workdir, step=None)` rebuilds the network from `workdir/config.json`
and restores the model variables (parameters and BatchNorm statistics) of the
latest or given Orbax checkpoint onto one device, without the dataset or the
optimiser's values. The Predictor (inference) and `config.init_from=WORKDIR`
(fine-tuning one benchmark from another) both read runs through it.
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
from fashionnet_jax.training.step import abstract_train_state

CONFIG_FILE = "config.json"


class RunNotFoundError(FashionNetError, FileNotFoundError):
  """No run (config.json) or no checkpoint where the user pointed."""


@dataclasses.dataclass(frozen=True)
class Run:
  workdir: epath.Path
  config: ml_collections.ConfigDict
  step: int
  params: Any  # pure dict of arrays, on one device
  model_state: Any


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


def load_run(workdir, step=None) -> Run:
  """The run's config and the model variables of checkpoint `step` (default: the latest)."""
  workdir = epath.Path(workdir)
  config = read_config(workdir)
  schedule = Schedule(config.stages, config.num_rounds)
  abstract = abstract_train_state(model_fn(config), make_optimizer(config, schedule.total_steps),
                                  int(config.seed))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = abstract_like(abstract, jax.tree.map(lambda _: device, abstract))
  ckpt = Checkpointer(workdir, every_steps=0, keep=1 << 30, async_save=False, read_only=True)
  try:
    if step is None:
      step, state = ckpt.restore_newest(lambda s: ckpt.restore_state_only(abstract, s))
      if step is None:
        raise RunNotFoundError(f"{workdir / 'checkpoints'}: no checkpoint")
    else:
      step = int(step)
      if step not in ckpt.manager.all_steps():
        raise RunNotFoundError(f"{workdir / 'checkpoints' / str(step)}: no such checkpoint")
      state = ckpt.restore_state_only(abstract, step)
  finally:
    ckpt.close()
  return Run(workdir, config, int(step), state.params, state.model_state)
