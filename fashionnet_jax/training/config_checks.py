"""Config validation: a mistake fails at start with one line naming the field."""
from __future__ import annotations

from fashionnet_jax.data.prepare import dataset_builder_config
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.schema import BACKBONES

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
