"""train_and_evaluate(config, workdir): the FashionNet training loop.

Flow: dataset (synthetic DeepFashion is generated and built on first use when the
config allows) → grain host batches → global jax.Arrays on the (data, model) mesh
→ one jitted, donated train step for every stage → Orbax checkpoints (state +
grain iterator) and CLU metric writers → evaluation with the paper's protocols.
"""
from __future__ import annotations

import functools
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath

from fashionnet_jax import input_pipeline, labels, sharding
from fashionnet_jax.checkpointing import Checkpointer, abstract_like
from fashionnet_jax.config_checks import validate_config
from fashionnet_jax.data_setup import ensure_dataset
from fashionnet_jax.models import create_model
from fashionnet_jax.optim import learning_rate_schedule, make_optimizer
from fashionnet_jax.stages import LOSS_TERMS, Schedule
from fashionnet_jax.train_step import (abstract_train_state, create_train_state, merge_model,
                                       split_model, train_step)


class NonFiniteLossError(RuntimeError):
  """Too many consecutive updates had a non-finite loss or gradient."""


class _Preemption:
  """SIGTERM (spot/preemptible VMs) asks the loop to save and stop."""

  def __init__(self):
    self.requested = False
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    else:
      self._previous = None

  def _handle(self, signum, frame):
    logging.warning("SIGTERM received: saving a checkpoint before exit.")
    self.requested = True

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def attribute_loss_weights(config):
  """(w_pos, w_neg) per attribute from the training split's positive ratio."""
  from fashionnet_jax import losses
  num = int(config.model.num_attributes)
  if not config.loss.attribute_weighting:
    return np.ones(num, np.float32), np.ones(num, np.float32)
  stats = input_pipeline.attribute_statistics(config)
  ratio = np.asarray(stats["positive_ratio"], np.float32)
  if ratio.shape != (num,):
    raise sharding.ConfigError(
        f"config.model.num_attributes={num} but the dataset has {ratio.shape[0]} attributes")
  w_pos, w_neg = losses.attribute_loss_weights(ratio)
  return np.asarray(w_pos, np.float32), np.asarray(w_neg, np.float32)


def _load_pretrained(trainer, config):
  """Overwrites the initial parameters with converted ImageNet weights (config.init_from)."""
  from fashionnet_jax import weights
  state = jax.device_get(trainer.state)
  model = merge_model(trainer.graphdef, state.params, state.model_state)
  weights.load_pretrained(model, config.init_from, config.model.backbone)
  _, params, _ = split_model(model)
  state = state.replace(params=params, opt_state=trainer.tx.init(params))
  return jax.device_put(state, trainer.state_shardings)


def jit_train_step(config, graphdef, tx, state_shardings, mesh):
  """The jitted train step: state donated, batch split over `data`, the rest replicated.

  Called as step_fn(state, batch, loss_weights, group_mask, aux) -> (state, metrics).
  """
  repl = sharding.replicated(mesh)
  step = lambda state, batch, w, m, aux: train_step(
      state, batch, w, m, aux, graphdef=graphdef, tx=tx, loss_config=config.loss)
  return jax.jit(
      step, donate_argnums=(0,),
      in_shardings=(state_shardings, sharding.batch_sharding(mesh), repl, repl, repl),
      out_shardings=(state_shardings, repl))


class Trainer:
  """Builds model, optimiser, mesh and the compiled step from a config."""

  def __init__(self, config, workdir, devices=None):
    validate_config(config)
    self.config = config
    self.workdir = epath.Path(workdir)
    self.mesh = sharding.create_mesh(config.mesh, devices)
    sharding.check_batch_size(int(config.batch_size), self.mesh)
    self.schedule = Schedule(config.stages, config.num_rounds)
    seed = int(config.seed)
    model_fn = lambda: create_model(config.model, seed=seed)
    self.tx = make_optimizer(config, self.schedule.total_steps)
    self.lr_schedule = learning_rate_schedule(config.optimizer, self.schedule.total_steps)
    self.state_shardings = sharding.state_shardings(
        self.mesh, abstract_train_state(model_fn, self.tx, seed))
    self.graphdef, self.state = create_train_state(model_fn, self.tx, seed, self.state_shardings)
    if config.get("init_from"):
      self.state = _load_pretrained(self, config)
    repl = sharding.replicated(self.mesh)
    self.batch_sharding = sharding.batch_sharding(self.mesh)
    w_pos, w_neg = attribute_loss_weights(config)
    self.aux = jax.device_put(dict(w_pos=w_pos, w_neg=w_neg), repl)
    self._stage_arrays = [
        (jax.device_put(s.loss_weights, repl), jax.device_put(s.group_mask, repl))
        for s in self.schedule.stages]
    self.step_fn = jit_train_step(config, self.graphdef, self.tx, self.state_shardings, self.mesh)

  @functools.cached_property
  def predict_fn(self):
    """The jitted eval-mode forward pass (evaluation), compiled on first use."""
    from fashionnet_jax.eval_loop import make_predict_fn
    return make_predict_fn(self.graphdef, self.state_shardings, self.batch_sharding,
                           self.batch_sharding)

  def stage_arrays(self, step: int):
    return self._stage_arrays[self.schedule.locate(step)[1]]

  def global_batch(self, host_batch):
    return input_pipeline.make_global_batch(host_batch, self.mesh)

  def abstract_state(self):
    return abstract_like(self.state, self.state_shardings)


def _stage_meta(trainer: Trainer, step: int) -> dict:
  round_, stage = trainer.schedule.locate(step)
  return dict(step=int(step), round=int(round_), stage=int(stage),
              stage_name=trainer.schedule.stages[stage].name)


def _check_nonfinite(metrics, step, limit):
  streak = int(metrics["nonfinite_streak"])
  if streak >= limit:
    bad = [k for k, b in zip(LOSS_TERMS, np.asarray(metrics["term_nonfinite"])) if b]
    what = ", ".join(bad) if bad else "the gradient"
    raise NonFiniteLossError(
        f"step {step}: {streak} consecutive non-finite updates (non-finite: {what}); stopping")


def train_and_evaluate(config, workdir) -> dict:
  """Trains (resuming from the latest checkpoint in workdir) and evaluates."""
  # clu's metric writers import TensorFlow: imported here, not at module level,
  # so the Trainer (benchmarks) loads without TensorFlow.
  from clu import metric_writers, periodic_actions

  from fashionnet_jax import eval_loop

  ensure_dataset(config)
  trainer = Trainer(config, workdir)
  workdir = trainer.workdir
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    # What predict/retrieve need to rebuild the network without the dataset.
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))
    labels.save(labels.dataset_labels(config), workdir)
  writer = metric_writers.create_default_writer(
      str(workdir), just_logging=jax.process_index() > 0)
  train_iter = input_pipeline.create_train_iterator(config)
  ckpt = Checkpointer(workdir, every_steps=config.checkpoint_every_steps,
                      keep=config.keep_checkpoints)
  start = 0
  if ckpt.latest_step() is not None:
    trainer.state, meta = ckpt.restore(trainer.abstract_state(), train_iter)
    start = int(meta["step"])
    logging.info("Resumed from step %d (round %d, stage %s).", start, meta["round"],
                 meta["stage_name"])
  total = trainer.schedule.total_steps
  if start == 0:
    writer.write_hparams({k: v for k, v in config.to_dict().items()
                          if isinstance(v, (int, float, str, bool))})

  hooks = []
  if jax.process_index() == 0:
    hooks.append(periodic_actions.ReportProgress(num_train_steps=total, writer=writer))
    if int(config.get("profile_steps", 0)) > 0:
      hooks.append(periodic_actions.Profile(
          num_profile_steps=int(config.profile_steps), logdir=str(workdir),
          first_profile=min(start + 10, total)))
  if start == 0 and config.get("eval_at_start", False):
    eval_loop.evaluate_and_report(config, trainer, writer, 0)
  preemption = _Preemption()
  limit = int(config.max_consecutive_nonfinite)
  history, previous, t_log, step = [], None, time.perf_counter(), start
  try:
    for step in range(start, total):
      weights, mask = trainer.stage_arrays(step)
      batch = trainer.global_batch(next(train_iter))
      trainer.state, metrics = trainer.step_fn(trainer.state, batch, weights, mask, trainer.aux)
      # Read the previous step's guard now: no host sync on the step just dispatched.
      if previous is not None:
        _check_nonfinite(previous, step - 1, limit)
      previous = metrics
      history.append(metrics)
      done = step + 1
      for hook in hooks:
        hook(done)
      if done % int(config.log_every_steps) == 0 or done == total:
        scalars = _summarise(history)
        dt = time.perf_counter() - t_log
        scalars.update(
            learning_rate=float(trainer.lr_schedule(step)),
            stage=float(_stage_meta(trainer, step)["stage"]),
            images_per_sec=len(history) * int(config.batch_size) / max(dt, 1e-9))
        writer.write_scalars(done, scalars)
        history, t_log = [], time.perf_counter()
      if ckpt.should_save(done) or preemption.requested:
        ckpt.save(done, trainer.state, train_iter, _stage_meta(trainer, done))
      if preemption.requested:
        break
      if config.eval_every_steps and done % int(config.eval_every_steps) == 0 and done < total:
        eval_loop.evaluate_and_report(config, trainer, writer, done)
    if previous is not None:
      _check_nonfinite(previous, step, limit)
    if not preemption.requested and start < total and ckpt.latest_step() != total:
      ckpt.save(total, trainer.state, train_iter, _stage_meta(trainer, total), force=True)
  finally:
    ckpt.close()
    preemption.restore()
  if preemption.requested:
    writer.flush()
    return {}
  logging.info("process %d: final parameter fingerprint %s", jax.process_index(),
               parameter_fingerprint(trainer.state.params))
  results = eval_loop.evaluate_and_report(config, trainer, writer, total)
  writer.flush()
  return results


def parameter_fingerprint(params) -> str:
  """A hash of this process's copy of the parameters (replicas must agree bitwise)."""
  import hashlib
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    local = leaf.addressable_shards[0].data if leaf.is_fully_replicated else leaf
    digest.update(np.asarray(jax.device_get(local)).tobytes())
  return digest.hexdigest()[:16]


def _summarise(history) -> dict:
  keys = [k for k in history[0] if k not in ("term_nonfinite", "nonfinite_streak")]
  stacked = jax.device_get([{k: m[k] for k in keys} for m in history])
  out = {k: float(np.mean([h[k] for h in stacked])) for k in keys}
  out["updates_skipped"] = float(np.sum([h["update_skipped"] for h in stacked]))
  out.pop("update_skipped")
  return out
