"""The paper's iterative training schedule: stages of loss weights and learning groups.

`config.stages` lists the stages (each `steps` long, with `weights` for the five
loss terms and the parameter groups it `train`s); `config.num_rounds` repeats the
list. The compiled train step receives a stage as two small arrays (loss weights
and a 0/1 mask over the groups), so switching stage never recompiles it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fashionnet_jax.errors import ConfigError

# Top-level sub-modules of FashionNet, one optax.partition label each.
GROUPS = ("trunk", "pose_branch", "local_branch", "global_branch", "fusion", "heads")
LOSS_TERMS = ("landmark", "visibility", "category", "attribute", "triplet")


@dataclasses.dataclass(frozen=True)
class Stage:
  name: str
  steps: int
  loss_weights: np.ndarray  # [len(LOSS_TERMS)] float32
  group_mask: np.ndarray  # [len(GROUPS)] float32, 1 = learns


class Schedule:
  """Maps a global step to its (round, stage) and the stage's arrays."""

  def __init__(self, stages_config, num_rounds: int):
    if not stages_config:
      raise ConfigError("config.stages is empty: list at least one stage")
    if int(num_rounds) < 1:
      raise ConfigError(f"config.num_rounds must be >= 1, got {num_rounds}")
    self.stages = tuple(_parse_stage(i, s) for i, s in enumerate(stages_config))
    self.num_rounds = int(num_rounds)
    self.round_steps = sum(s.steps for s in self.stages)
    self.total_steps = self.round_steps * self.num_rounds
    self._ends = np.cumsum([s.steps for s in self.stages])

  def locate(self, step: int) -> tuple[int, int]:
    """(round, stage index) that global step `step` (0-based) belongs to."""
    step = min(int(step), self.total_steps - 1)
    round_, within = divmod(step, self.round_steps)
    return round_, int(np.searchsorted(self._ends, within, side="right"))


def _parse_stage(index: int, s) -> Stage:
  name = s.get("name", f"stage{index}")
  where = f"config.stages[{index}] ({name!r})"
  steps = int(s.get("steps", 0))
  if steps < 1:
    raise ConfigError(f"{where}: steps must be >= 1, got {steps}")
  weights = dict(s.get("weights", {}))
  unknown = set(weights) - set(LOSS_TERMS)
  if unknown:
    raise ConfigError(
        f"{where}: unknown loss terms {sorted(unknown)}; known: {', '.join(LOSS_TERMS)}"
    )
  train = tuple(s.get("train", ()))
  unknown = set(train) - set(GROUPS)
  if unknown:
    raise ConfigError(
        f"{where}: unknown parameter groups {sorted(unknown)}; known: {', '.join(GROUPS)}"
    )
  if not train:
    raise ConfigError(f"{where}: trains no parameter group")
  return Stage(
      name=name,
      steps=steps,
      loss_weights=np.array([float(weights.get(t, 0.0)) for t in LOSS_TERMS], np.float32),
      group_mask=np.array([g in train for g in GROUPS], np.float32),
  )
