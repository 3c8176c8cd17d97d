"""Config validation: a mistake fails at start with one line naming the field.

Once per run: train.py validates before it claims the workdir or prepares the
data, and builds its TrainSetup with `checked=True`; a TrainSetup built on its
own (benchmarks, tests) validates its config itself.
"""

from __future__ import annotations

import os

from fashionnet_jax.data.prepare import dataset_builder_config
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.schema import BACKBONES, LANDMARK_HEADS

# `config.init_from` value that trains a full-size config from random weights on purpose.
INIT_FROM_SCRATCH = "scratch"

_CHOICES = {
    "model.backbone": BACKBONES,
    "model.dtype": ("float32", "bfloat16"),
    "model.landmark_head": LANDMARK_HEADS,
    "optimizer.name": ("sgd", "adamw"),
    "optimizer.schedule": ("cosine", "step", "constant"),
    "loss.triplet_mining": ("batch_hard", "random"),
    "input.sampler": ("random", "pk"),
}


def _get(config, dotted):
  value = config
  for part in dotted.split("."):
    if part not in value:
      raise ConfigError(f"config.{dotted} is missing")
    value = value[part]
  return value


# Every numeric field with a bound: (lowest, highest, whether each end is allowed).
# None: unbounded on that side. One place, so each mistake fails at start in one line.
_BOUNDS = {
    "seed": (0, None, True, True),
    "image_size": (32, None, True, True),
    "batch_size": (1, None, True, True),
    "eval_batch_size": (1, None, True, True),
    "num_rounds": (1, None, True, True),
    "log_every_steps": (1, None, True, True),
    "eval_every_steps": (0, None, True, True),
    "checkpoint_every_steps": (0, None, True, True),
    # 0 would delete every checkpoint, the final one too: the model would be gone.
    "keep_checkpoints": (1, None, True, True),
    "max_consecutive_nonfinite": (1, None, True, True),
    "profile_steps": (0, None, True, True),
    "dataset.synthetic_images": (1, None, True, True),
    "input.crop_margin": (0.0, 1.0, True, True),
    "input.crop_jitter": (0.0, 1.0, True, False),
    "input.color_jitter": (0.0, 1.0, True, True),
    "input.worker_count": (0, None, True, True),
    "input.prefetch_buffer_size": (1, None, True, True),
    "input.retrieval_p": (2, None, True, True),  # batch-hard needs another item
    "input.retrieval_k": (2, None, True, True),  # ... and another image of the same one
    "model.width_multiplier": (0.0, None, False, True),
    "model.fc6_dim": (1, None, True, True),
    "model.fc6_local_dim": (1, None, True, True),
    "model.num_landmarks": (1, None, True, True),
    "model.num_categories": (2, None, True, True),
    "model.num_attributes": (1, None, True, True),
    "model.embedding_dim": (1, None, True, True),
    "model.pooling_window": (1, None, True, True),
    "model.dropout_rate": (0.0, 1.0, True, False),
    "loss.triplet_margin": (0.0, None, True, True),
    "loss.attribute_min_ratio": (0.0, 0.5, False, True),
    "loss.heatmap_sigma": (0.0, None, False, True),  # map cells
    "optimizer.learning_rate": (0.0, None, False, True),
    "optimizer.momentum": (0.0, 1.0, True, False),
    "optimizer.weight_decay": (0.0, None, True, True),
    "optimizer.warmup_steps": (0, None, True, True),
    "optimizer.step_factor": (0.0, 1.0, False, True),
    "optimizer.grad_clip_norm": (0.0, None, True, True),  # 0: no clipping
    "optimizer.new_layer_lr_multiplier": (0.0, None, False, True),
}


def _range_text(low, high, low_in, high_in) -> str:
  if high is None:
    return f"must be {'>=' if low_in else '>'} {low}"
  return f"must be in {'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"


def _check_bounds(config) -> None:
  for dotted, (low, high, low_in, high_in) in _BOUNDS.items():
    value = _get(config, dotted)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f"config.{dotted}={value!r}: must be a number")
    ok = (value >= low if low_in else value > low) and (
        high is None or (value <= high if high_in else value < high)
    )
    if not ok or value != value:  # NaN fails every comparison
      raise ConfigError(f"config.{dotted}={value!r}: {_range_text(low, high, low_in, high_in)}")
  if int(config.model.pooling_window) % 2 == 0:
    raise ConfigError(
        f"config.model.pooling_window={config.model.pooling_window}: must be odd "
        "(a window centred on the landmark)"
    )
  boundaries = list(config.optimizer.step_boundaries)
  if any(not 0 < b < 1 for b in boundaries) or boundaries != sorted(boundaries):
    raise ConfigError(
        f"config.optimizer.step_boundaries={tuple(boundaries)}: must be increasing "
        "fractions of training in (0, 1)"
    )
  for stage in config.stages:
    if int(stage.steps) < 0:
      raise ConfigError(f"config.stages[{stage.name!r}].steps={stage.steps}: must be >= 0")
    for term, weight in stage.weights.items():
      if not float(weight) >= 0:
        raise ConfigError(f"config.stages[{stage.name!r}].weights.{term}={weight}: must be >= 0")
  if sum(int(s.steps) for s in config.stages) < 1:
    raise ConfigError("config.stages: every stage has 0 steps; nothing to train")


def validate_config(config) -> None:
  for dotted, choices in _CHOICES.items():
    value = _get(config, dotted)
    if value not in choices:
      raise ConfigError(f"config.{dotted}={value!r}: unknown, use one of {', '.join(choices)}")
  _check_bounds(config)
  benchmark = dataset_builder_config(config)  # an unknown dataset.name fails here
  if config.get("select_metric"):
    if benchmark == "inshop":
      raise ConfigError(
          "config.select_metric: In-shop has no validation split (train, query, gallery); "
          "unset it and report the final step"
      )
    if config.get("select_mode", "max") not in ("max", "min"):
      raise ConfigError(f"config.select_mode={config.select_mode!r}: use 'max' or 'min'")
    if int(config.eval_every_steps) < 1:
      raise ConfigError(
          "config.select_metric needs config.eval_every_steps >= 1 "
          "(how often the validation split is evaluated)"
      )
  if int(config.image_size) % 32:
    raise ConfigError(
        f"config.image_size={config.image_size} must be a multiple of 32 (five 2x poolings)"
    )
  if config.input.sampler == "pk":
    pk = int(config.input.retrieval_p) * int(config.input.retrieval_k)
    if pk != int(config.batch_size):
      raise ConfigError(
          f"config.batch_size={config.batch_size} must equal input.retrieval_p x retrieval_k = {pk}"
      )


def check_init_from(config) -> None:
  """A full-size config (require_init_from) starts from weights unless told 'scratch'."""
  if config.get("require_init_from", False) and not config.get("init_from"):
    raise ConfigError(
        "config.init_from is not set: this full-size config fine-tunes ImageNet weights "
        "(convert them with `python -m fashionnet_jax.weights`, then --config.init_from=PATH), "
        f"or set --config.init_from={INIT_FROM_SCRATCH} to train from random weights"
    )
  init_from = config.get("init_from")
  if init_from and init_from != INIT_FROM_SCRATCH and "://" not in init_from:
    # Before the model is built (minutes at full size), not after.
    if not os.path.exists(init_from):
      raise ConfigError(f"config.init_from={init_from}: no such file or run folder")
  if init_from and init_from != INIT_FROM_SCRATCH:
    from fashionnet_jax.training.runs import is_run, read_config

    if is_run(init_from):
      # From a run of another backbone only the heads' shapes would match: a silent
      # near-scratch start.
      theirs, ours = read_config(init_from).model.get("backbone", "vgg16"), config.model.backbone
      if theirs != ours:
        raise ConfigError(
            f"config.init_from={init_from}: a {theirs} run, and this config's backbone is "
            f"{ours}; fine-tune from a {ours} run or from {ours} ImageNet weights"
        )
