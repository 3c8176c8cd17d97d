"""train_and_evaluate(config, workdir): the orchestrator that joins data/, training/ and evaluation/.

Flow: dataset (synthetic DeepFashion is generated and built on first use when the
config allows) → grain host batches → global jax.Arrays on the (data, model) mesh
→ one jitted, donated train step for every stage (training.train_setup) → Orbax
checkpoints (state + grain iterator) and CLU metric writers → evaluation with the
paper's protocols (evaluation.loop). `evaluate_checkpoint` is --mode=evaluate.
"""

from __future__ import annotations

import hashlib
import signal
import tempfile
import threading
import time

import jax
import numpy as np
from absl import logging

from fashionnet_jax import console
from fashionnet_jax.data import labels, pipeline
from fashionnet_jax.data.prepare import ensure_dataset, trained_on
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.evaluation import loop as eval_loop
from fashionnet_jax.training import selection as selection_lib
from fashionnet_jax.training import workdir as run_workdir
from fashionnet_jax.training.checkpointing import Checkpointer
from fashionnet_jax.training.config_checks import check_init_from, validate_config
from fashionnet_jax.training.runs import CONFIG_FILE
from fashionnet_jax.training.schedule import LOSS_TERMS
from fashionnet_jax.training.train_setup import TrainSetup


class NonFiniteLossError(RuntimeError):
  """Too many consecutive updates had a non-finite loss or gradient."""


class Preempted(Exception):
  """SIGTERM stopped training after a checkpoint; the same command resumes it."""

  def __init__(self, step: int, workdir):
    super().__init__(
        f"preempted at step {step}: checkpoint saved in {workdir}; rerun the same "
        "command to resume"
    )
    self.step = step


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


VALIDATION_FOLDER = "eval/validation"


def _evaluate(config, setup, writer, step: int, state=None, out_dir=None, **kwargs) -> dict:
  """The paper-protocol evaluation of `state` (default: the run's current one),
  written to `out_dir` (default: the workdir)."""
  state = setup.state if state is None else state
  predict = lambda images: setup.predict_fn(state.params, state.model_state, images)
  return eval_loop.evaluate_and_report(
      config, predict, setup.mesh, out_dir or setup.workdir, writer, step, **kwargs
  )


def _validate(config, setup, writer, step: int, selection) -> None:
  """Model selection: evaluate on the validation split and keep the best state."""
  metrics = _evaluate(
      config, setup, writer, step, split=config.dataset.validation_split, folder=VALIDATION_FOLDER
  )
  selection.consider(step, metrics, setup.state)


def _final_evaluation(config, setup, writer, total: int, selection) -> dict:
  """Test evaluation: of the final state, or once of the state chosen on validation."""
  if selection is None:
    return _evaluate(config, setup, writer, total)
  if selection.step != total:
    _validate(config, setup, writer, total, selection)
  if selection.step is None:
    raise ConfigError(
        f"config.select_metric={selection.metric!r} was NaN at every validation: "
        "no step to choose (does the validation split have that label?)"
    )
  best = selection.restore(setup.abstract_state())
  logging.info(
      "Testing the step chosen on validation: %d (%s=%.4f).",
      selection.step,
      selection.metric,
      selection.value,
  )
  chosen = _chosen(selection.step, selection.metric, selection.value)
  results = _evaluate(config, setup, writer, selection.step, state=best, extra=chosen)
  results.update(chosen)
  return results


def _chosen(step, metric, value) -> dict:
  """What a test evaluation of the selected step records about the choice."""
  return dict(selected_step=int(step), selected_by=metric, selected_value=float(value))


def _stage_meta(setup: TrainSetup, step: int) -> dict:
  round_, stage = setup.schedule.locate(step)
  return dict(
      step=int(step),
      round=int(round_),
      stage=int(stage),
      stage_name=setup.schedule.stages[stage].name,
  )


def _check_nonfinite(metrics, step, limit):
  streak = int(metrics["nonfinite_streak"])
  if streak >= limit:
    bad = [k for k, b in zip(LOSS_TERMS, np.asarray(metrics["term_nonfinite"])) if b]
    what = ", ".join(bad) if bad else "the gradient"
    raise NonFiniteLossError(
        f"step {step}: {streak} consecutive non-finite updates (non-finite: {what}); stopping"
    )


def train_and_evaluate(config, workdir) -> dict:
  """Trains (resuming from the newest restorable checkpoint in workdir) and evaluates.

  Raises Preempted after saving when SIGTERM stopped it before the end.
  """
  validate_config(config)
  check_init_from(config)
  console.import_tensorflow()  # (TFDS and clu's writers need it) without its banners
  # Before anything is written: one writer per workdir, and a resumed run keeps its config.
  lock = run_workdir.claim(workdir, config, writer=jax.process_index() == 0)
  try:
    return _train_and_evaluate(config, workdir)
  finally:
    if lock is not None:
      lock.release()


def _train_and_evaluate(config, workdir) -> dict:
  # clu's metric writers import TensorFlow: imported here, not at module level,
  # so the TrainSetup (benchmarks) loads without TensorFlow.
  from clu import metric_writers, periodic_actions

  ensure_dataset(config)
  setup = TrainSetup(config, workdir, checked=True)  # train_and_evaluate checked it
  workdir = setup.workdir
  if jax.process_index() == 0:
    # What predict/retrieve need to rebuild the network without the dataset.
    (workdir / CONFIG_FILE).write_text(config.to_json_best_effort(indent=1))
    # ... and what the model is trained on, which predict and serve records carry.
    labels.save(dict(labels.dataset_labels(config), trained_on=trained_on(config)), workdir)
  writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
  train_iter = pipeline.create_train_iterator(config)
  ckpt = Checkpointer(
      workdir, every_steps=config.checkpoint_every_steps, keep=config.keep_checkpoints
  )
  selection = (
      selection_lib.BestCheckpoint(workdir, config.select_metric, config.select_mode)
      if config.get("select_metric")
      else None
  )
  start = 0
  restored, state_meta = ckpt.restore_newest(
      lambda s: ckpt.restore(setup.abstract_state(), train_iter, s)
  )
  if restored is not None:
    setup.state, meta = state_meta
    start = int(meta["step"])
    logging.info(
        "Resumed from step %d (round %d, stage %s).", start, meta["round"], meta["stage_name"]
    )
  total = setup.schedule.total_steps
  if start == 0:
    writer.write_hparams(
        {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}
    )

  hooks = []
  if jax.process_index() == 0:
    hooks.append(periodic_actions.ReportProgress(num_train_steps=total, writer=writer))
    if int(config.get("profile_steps", 0)) > 0:
      hooks.append(
          periodic_actions.Profile(
              num_profile_steps=int(config.profile_steps),
              logdir=str(workdir),
              first_profile=min(start + 10, total),
          )
      )
  if start == 0 and config.get("eval_at_start", False):
    _evaluate(config, setup, writer, 0)
  preemption = _Preemption()
  limit = int(config.max_consecutive_nonfinite)
  history, previous, t_log, step = [], None, time.perf_counter(), start
  progress = _progress(config, start, total)
  t_train = time.perf_counter()
  try:
    for step in range(start, total):
      weights, mask = setup.stage_arrays(step)
      batch = setup.global_batch(next(train_iter))
      if step == start and progress is not None:
        console.say("compiling the train step ...")
      setup.state, metrics = setup.step_fn(setup.state, batch, weights, mask, setup.aux)
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
            learning_rate=float(setup.lr_schedule(step)),
            stage=float(_stage_meta(setup, step)["stage"]),
            images_per_sec=len(history) * int(config.batch_size) / max(dt, 1e-9),
        )
        writer.write_scalars(done, scalars)
        history, t_log = [], time.perf_counter()
        if progress is not None:
          progress.update(done, scalars["loss"])
      elif progress is not None:
        progress.update(done)
      if ckpt.should_save(done) or preemption.requested:
        ckpt.save(done, setup.state, train_iter, _stage_meta(setup, done))
      if preemption.requested:
        break
      if config.eval_every_steps and done % int(config.eval_every_steps) == 0 and done < total:
        if selection is not None:
          _validate(config, setup, writer, done, selection)
        else:
          _evaluate(config, setup, writer, done)
    if previous is not None:
      _check_nonfinite(previous, step, limit)
    if not preemption.requested and start < total and ckpt.latest_step() != total:
      ckpt.save(total, setup.state, train_iter, _stage_meta(setup, total), force=True)
  finally:
    if progress is not None:
      progress.close()
    ckpt.close()
    preemption.restore()
  if progress is not None and not preemption.requested:
    console.say(
        f"trained steps {start + 1}-{total} in "
        f"{console.duration(time.perf_counter() - t_train)}"
    )
  if preemption.requested:
    writer.flush()
    raise Preempted(step + 1 if start < total else start, workdir)
  logging.info(
      "process %d: final parameter fingerprint %s",
      jax.process_index(),
      parameter_fingerprint(setup.state.params),
  )
  try:
    results = _final_evaluation(config, setup, writer, total, selection)
  finally:
    if selection is not None:
      selection.close()
  writer.flush()
  return results


def _progress(config, start: int, total: int):
  """Process 0's progress display (console.Progress), None elsewhere or with nothing to train."""
  if jax.process_index() != 0 or start >= total:
    return None
  console.say(
      f"training {total - start} steps (batch {int(config.batch_size)}, "
      f"{jax.device_count()} {jax.devices()[0].platform.upper()} device(s))"
  )
  return console.Progress(total, start, int(config.batch_size), int(config.log_every_steps))


def parameter_fingerprint(params) -> str:
  """A hash of this process's copy of the parameters (replicas must agree bitwise)."""
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


def evaluate_checkpoint(config, workdir, out_dir=None) -> dict[str, float]:
  """--mode=evaluate: evaluate the run's model, as the run's own final evaluation did.

  The run's model is the step chosen on validation (`best/`) when the run selects
  one, else the newest checkpoint that restores; the result then equals the run's
  own `eval/<step>.json`. A reader: it takes no lock and writes nothing into a run
  it may not write; the evaluation (JSON, table, plots, events) goes to `out_dir`,
  by default the workdir when writable, else a new temporary folder (said once).
  """
  console.import_tensorflow()  # (TFDS and clu's writers need it) without its banners
  from clu import metric_writers

  ensure_dataset(config)
  # Random variables: the checkpoint replaces the state.
  setup = TrainSetup(config, workdir, initialise=False, checked=True)
  choice = selection_lib.selected(setup.workdir)
  folder = selection_lib.BEST_FOLDER if choice is not None else "checkpoints"
  ckpt = Checkpointer(
      setup.workdir, every_steps=0, keep=config.keep_checkpoints, folder=folder, read_only=True
  )
  try:
    step, setup.state = ckpt.restore_newest(
        lambda s: ckpt.restore_state_only(setup.abstract_state(), s)
    )
  finally:
    ckpt.close()
  if step is None:
    raise ConfigError(f"no checkpoint in {setup.workdir / folder} to evaluate")
  extra = None
  if choice is not None:
    extra = _chosen(step, choice["metric"], choice["value"])
    logging.info(
        "Evaluating the step chosen on validation: %d (%s=%.4f).",
        step,
        choice["metric"],
        float(choice["value"]),
    )
  else:
    logging.info("Evaluating the newest checkpoint: step %d (the run selects none).", step)
  if out_dir is None and not run_workdir.writable(setup.workdir):
    out_dir = tempfile.mkdtemp(prefix="fashionnet_eval_")
    logging.warning(
        "%s is read-only: writing the evaluation to %s instead.", setup.workdir, out_dir
    )
  out_dir = run_workdir.prepare(out_dir) if out_dir is not None else setup.workdir
  writer = metric_writers.create_default_writer(str(out_dir), just_logging=jax.process_index() > 0)
  results = _evaluate(config, setup, writer, int(step), out_dir=out_dir, extra=extra)
  results.update(extra or {})
  return results
