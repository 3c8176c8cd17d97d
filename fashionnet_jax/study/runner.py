"""Runs a study: each variant an ordinary run folder under the study folder, resumable.

`run_study(preset, folder, train_fn)` builds every variant's config (same seed, same
data, the same step budget), trains the ones not finished with `train_fn(config,
workdir)` (train.train_and_evaluate: an interrupted variant resumes from its last
checkpoint) and reuses the finished ones (their `study_result.json`), then writes
the table and plot (study/table.py).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
import time

from fashionnet_jax.data.prepare import ensure_dataset
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.study import extent, table
from fashionnet_jax.study.presets import Preset, Variant

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository: configs/ lives here
RESULT_FILE = "study_result.json"  # written when a variant has finished, read to reuse it
SYNTHETIC_DATA = "synthetic_tfds"  # the study's own synthetic DeepFashion, under its folder


def _get_config_fn(path: str):
  """get_config of configs/<file>.py (relative to the repository root)."""
  file = ROOT / path
  if not file.exists():
    raise ConfigError(f"{file}: no such config file")
  if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the configs import each other as `configs.x`
  spec = importlib.util.spec_from_file_location(f"study_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config


def load_config(path: str, arg: str | None = None):
  """configs/<file>.py[:arg]: every config file takes none (the demo), 'gpu' or 'tpu'."""
  return _get_config_fn(path)(arg)


def variant_config(
    variant: Variant,
    preset: Preset,
    *,
    steps: int | None,
    seed: int,
    data_dir: str | None,
    platform: str | None = None,
    init_from: str | None = None,
):
  """The variant's config: demo size (the preset's overrides) or full size (`platform`)."""
  config = load_config(variant.config, platform)
  if platform is None:
    config.update_from_flattened_dict(dict(preset.overrides))
  config.update_from_flattened_dict(dict(variant.overrides))
  config.seed = seed
  config.eval_at_start = False  # the table compares trained variants
  if data_dir:
    config.dataset.data_dir = data_dir
  if init_from:
    config.init_from = init_from
  if steps:
    rescale_stages(config, steps)
  return config


def rescale_stages(config, steps: int) -> int:
  """Stretches the stages (their proportions kept, each ≥ 1 step) to `steps` in all."""
  rounds, stages = int(config.num_rounds), list(config.stages)
  per_round = steps // rounds
  if per_round < len(stages):
    raise ConfigError(
        f"--steps={steps}: fewer than one step per stage "
        f"({len(stages)} stages x {rounds} rounds)"
    )
  old = [int(s.steps) for s in stages]
  new = [max(1, per_round * s // sum(old)) for s in old]
  new[-1] += per_round - sum(new)
  for stage, n in zip(stages, new):
    stage.steps = n
  config.optimizer.warmup_steps = min(int(config.optimizer.warmup_steps), steps // 10)
  if int(config.get("eval_every_steps", 0)):
    config.eval_every_steps = max(1, min(int(config.eval_every_steps), steps))
    config.checkpoint_every_steps = config.eval_every_steps
  return per_round * rounds


def run_study(
    preset: Preset,
    folder,
    train_fn,
    *,
    steps=None,
    seed=0,
    data_dir=None,
    platform=None,
    init_from=None,
    log=print,
) -> dict:
  """Trains (or reuses) every variant and writes the table; returns {variant: result}."""
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  if platform is None and data_dir is None:
    data_dir = str(folder / SYNTHETIC_DATA)
  budget = steps or (None if platform else preset.steps)
  results = {}
  for i, variant in enumerate(preset.variants, 1):
    workdir = folder / variant.name
    done = workdir / RESULT_FILE
    if done.exists():
      results[variant.name] = json.loads(done.read_text())
      log(
          f"[{i}/{len(preset.variants)}] {variant.name}: finished before, reused "
          f"({results[variant.name]['wall_s']:.0f} s)"
      )
      continue
    config = variant_config(
        variant,
        preset,
        steps=budget,
        seed=seed,
        data_dir=data_dir,
        platform=platform,
        init_from=init_from,
    )
    total = sum(int(s.steps) for s in config.stages) * int(config.num_rounds)
    log(
        f"[{i}/{len(preset.variants)}] {variant.name}: {variant.config}, {total} steps "
        f"-> {workdir}"
    )
    ensure_dataset(config)  # outside the wall time: the first variant would pay for it
    start = time.perf_counter()
    metrics = train_fn(config, workdir)  # train.Preempted propagates: rerun to resume
    wall = time.perf_counter() - start  # training and its evaluation
    metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    if preset.by_extent:
      metrics.update(extent.recall_by_extent(config, workdir))
    results[variant.name] = dict(
        config=variant.config,
        overrides=dict(variant.overrides),
        steps=total,
        seed=seed,
        wall_s=wall,
        metrics=metrics,
    )
    done.write_text(json.dumps(results[variant.name], indent=1) + "\n")
    log(f"{variant.name}: done in {results[variant.name]['wall_s']:.0f} s")
  written = table.write(preset, results, folder)
  log(f"table: {written['markdown']}\nplot: {written['plot']}")
  return results
