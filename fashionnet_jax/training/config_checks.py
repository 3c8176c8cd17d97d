"""Config validation: a mistake fails at start with one line naming the field."""
from __future__ import annotations

from fashionnet_jax.data.prepare import dataset_builder_config
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.schema import BACKBONES

# `config.init_from` value that trains a full-size config from random weights on purpose.
INIT_FROM_SCRATCH = "scratch"

_CHOICES = {
    "model.backbone": BACKBONES,
    "model.dtype": ("float32", "bfloat16"),
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


def validate_config(config) -> None:
  for dotted, choices in _CHOICES.items():
    value = _get(config, dotted)
    if value not in choices:
      raise ConfigError(f"config.{dotted}={value!r}: unknown, use one of {', '.join(choices)}")
  dataset_builder_config(config)
  if config.get("select_metric"):
    if dataset_builder_config(config) == "inshop":
      raise ConfigError(
          "config.select_metric: In-shop has no validation split (train, query, gallery); "
          "unset it and report the final step")
    if config.get("select_mode", "max") not in ("max", "min"):
      raise ConfigError(f"config.select_mode={config.select_mode!r}: use 'max' or 'min'")
    if int(config.eval_every_steps) < 1:
      raise ConfigError("config.select_metric needs config.eval_every_steps >= 1 "
                        "(how often the validation split is evaluated)")
  for dotted in ("batch_size", "eval_batch_size", "image_size", "log_every_steps"):
    if int(_get(config, dotted)) < 1:
      raise ConfigError(f"config.{dotted}={_get(config, dotted)!r} must be >= 1")
  if int(config.image_size) % 32:
    raise ConfigError(
        f"config.image_size={config.image_size} must be a multiple of 32 (five 2x poolings)")
  if config.input.sampler == "pk":
    pk = int(config.input.retrieval_p) * int(config.input.retrieval_k)
    if pk != int(config.batch_size):
      raise ConfigError(
          f"config.batch_size={config.batch_size} must equal input.retrieval_p x retrieval_k = {pk}")


def check_init_from(config) -> None:
  """A full-size config (require_init_from) starts from weights unless told 'scratch'."""
  if config.get("require_init_from", False) and not config.get("init_from"):
    raise ConfigError(
        "config.init_from is not set: this full-size config fine-tunes ImageNet weights "
        "(convert them with `python -m fashionnet_jax.weights`, then --config.init_from=PATH), "
        f"or set --config.init_from={INIT_FROM_SCRATCH} to train from random weights")
