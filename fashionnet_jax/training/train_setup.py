"""TrainSetup: model, optimiser, mesh, train state and the compiled step, built from a config.

It runs no loop (train.py does): `TrainSetup(config, workdir)` validates the
config (unless its caller has: `checked`), lays the (data, model) mesh,
creates the sharded train state in one compiled program (with `init_from`
weights when the config names them), the optimiser (the parameters those weights
did not fill learn at the new-layer rate), the stage arrays and the jitted train
step. `train.py` runs the loop over it; benchmarks and the HLO audit build it
to measure the exact step that training runs.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from absl import logging
from etils import epath
from flax import traverse_util

from fashionnet_jax import sharding
from fashionnet_jax.data import pipeline
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.models import pretrained
from fashionnet_jax.models.functional import make_predict_fn, merge_model, split_model
from fashionnet_jax.training import losses
from fashionnet_jax.training.checkpointing import abstract_like
from fashionnet_jax.training.config_checks import (
    INIT_FROM_SCRATCH,
    check_init_from,
    validate_config,
)
from fashionnet_jax.training.optim import (learning_rate_schedule, make_optimizer, param_names)
from fashionnet_jax.training.runs import is_run, load_run, model_fn
from fashionnet_jax.training.schedule import Schedule
from fashionnet_jax.training.step import abstract_train_state, create_train_state, jit_train_step


def attribute_loss_weights(config):
  """(w_pos, w_neg) per attribute from the training split's positive ratio."""
  num = int(config.model.num_attributes)
  if not config.loss.attribute_weighting:
    return np.ones(num, np.float32), np.ones(num, np.float32)
  stats = pipeline.attribute_statistics(config)
  ratio = np.asarray(stats["positive_ratio"], np.float32)
  if ratio.shape != (num,):
    raise ConfigError(
        f"config.model.num_attributes={num} but the dataset has {ratio.shape[0]} attributes"
    )
  w_pos, w_neg = losses.attribute_loss_weights(ratio, float(config.loss.attribute_min_ratio))
  return np.asarray(w_pos, np.float32), np.asarray(w_neg, np.float32)


def _variables_from_run(workdir, params, model_state):
  """A FashionNet run's latest variables, wherever path and shape match ours, and the
  path names of the parameters copied.

  Fine-tuning one benchmark from another: a layer whose shape differs (another
  number of attributes) or that the other run lacks keeps its initialisation.
  """
  run = load_run(workdir)
  source = dict(
      params=traverse_util.flatten_dict(jax.device_get(run.params)),
      model_state=traverse_util.flatten_dict(jax.device_get(run.model_state)),
  )
  out, copied, skipped = [], [], []
  for name, tree in (("params", params), ("model_state", model_state)):
    flat = traverse_util.flatten_dict(tree)
    for path, value in flat.items():
      theirs = source[name].get(path)
      if theirs is not None and np.shape(theirs) == np.shape(value):
        flat[path] = np.asarray(theirs, np.asarray(value).dtype)
        copied.append((name, "/".join(map(str, path))))
      else:
        skipped.append("/".join(map(str, path)))
    out.append(traverse_util.unflatten_dict(flat))
  logging.info(
      "init_from %s (step %d): %d tensors copied, %d kept their initialisation%s",
      workdir,
      run.step,
      len(copied),
      len(skipped),
      f" ({', '.join(skipped[:8])}{', ...' if len(skipped) > 8 else ''})" if skipped else "",
  )
  return out, frozenset(path for name, path in copied if name == "params")


def _load_pretrained(config, graphdef, state, tx, shardings):
  """The initial state with its variables overwritten from config.init_from, and the
  path names of the parameters it filled.

  config.init_from is converted ImageNet weights (every tensor the conversion
  wrote, BatchNorm statistics included) or a FashionNet run's workdir (its latest
  checkpoint). The optimiser starts afresh.
  """
  state = jax.device_get(state)
  if is_run(config.init_from):
    (params, model_state), filled = _variables_from_run(
        config.init_from, state.params, state.model_state
    )
  else:
    model = merge_model(graphdef, state.params, state.model_state)
    written = pretrained.load_pretrained(model, config.init_from, config.model.backbone)
    _, params, model_state = split_model(model)
    filled = param_names(params) & frozenset(written)  # BatchNorm statistics are not parameters
  state = state.replace(params=params, model_state=model_state, opt_state=tx.init(params))
  return jax.device_put(state, shardings), filled


def _log_new_layers(config, params, filled):
  new = param_names(params) - filled
  layers = sorted({"/".join(name.split("/")[:2]) for name in new})
  logging.info(
      "init_from filled %d of %d parameters; the layers it left at random learn at "
      "%gx (config.optimizer.new_layer_lr_multiplier): %s",
      len(filled),
      len(filled) + len(new),
      float(config.optimizer.get("new_layer_lr_multiplier", 1.0)),
      ", ".join(layers) or "none",
  )


class TrainSetup:
  """What a training run is built from: model, optimiser, mesh, sharded train state
  (with the `init_from` weights) and the compiled step."""

  def __init__(
      self, config, workdir, devices=None, *, initialise: bool = True, checked: bool = False
  ):
    """`initialise=False`: random variables only, for a state about to be restored
    from a checkpoint (evaluation): init_from is neither required nor read.
    `checked=True`: the caller has validated the config (train.py does, before it
    claims the workdir and prepares the data), so it is not validated again."""
    if not checked:
      validate_config(config)
      if initialise:
        check_init_from(config)
    self.config = config
    self.workdir = epath.Path(workdir)
    self.mesh = sharding.create_mesh(config.mesh, devices)
    sharding.check_batch_size(int(config.batch_size), self.mesh)
    self.schedule = Schedule(config.stages, config.num_rounds)
    seed = int(config.seed)
    total = self.schedule.total_steps
    # The state's structure does not depend on which layers are new (optim.scale_by_layer),
    # so it is created before the weight file says which they are.
    tx = make_optimizer(config, total)
    self.lr_schedule = learning_rate_schedule(config.optimizer, total)
    self.state_shardings = sharding.state_shardings(
        self.mesh, abstract_train_state(model_fn(config), tx, seed)
    )
    self.graphdef, self.state = create_train_state(model_fn(config), tx, seed, self.state_shardings)
    # The parameters init_from filled (None: no weight file). Recomputed from the same
    # file when a run resumes, so the resumed run's optimiser is the same one.
    self.pretrained = None
    if initialise and config.get("init_from") and config.init_from != INIT_FROM_SCRATCH:
      self.state, self.pretrained = _load_pretrained(
          config, self.graphdef, self.state, tx, self.state_shardings
      )
      _log_new_layers(config, self.state.params, self.pretrained)
    self.tx = make_optimizer(config, total, self.pretrained)
    repl = sharding.replicated(self.mesh)
    self.batch_sharding = sharding.batch_sharding(self.mesh)
    w_pos, w_neg = attribute_loss_weights(config)
    self.aux = jax.device_put(dict(w_pos=w_pos, w_neg=w_neg), repl)
    self._stage_arrays = [
        (jax.device_put(s.loss_weights, repl), jax.device_put(s.group_mask, repl))
        for s in self.schedule.stages
    ]
    self.step_fn = jit_train_step(config, self.graphdef, self.tx, self.state_shardings, self.mesh)

  @functools.cached_property
  def predict_fn(self):
    """The jitted eval-mode forward pass over the mesh, compiled on first use."""
    return make_predict_fn(
        self.graphdef,
        params_sharding=self.state_shardings.params,
        model_state_sharding=self.state_shardings.model_state,
        batch_sharding=self.batch_sharding,
        out_sharding=self.batch_sharding,
    )

  def stage_arrays(self, step: int):
    return self._stage_arrays[self.schedule.locate(step)[1]]

  def global_batch(self, host_batch):
    return pipeline.make_global_batch(host_batch, self.mesh)

  def abstract_state(self):
    return abstract_like(self.state, self.state_shardings)
