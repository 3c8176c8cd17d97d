"""A trained FashionNet, restored from a run's workdir for inference.

`Predictor(workdir=DIR)` (or `checkpoint=DIR/checkpoints/STEP`) rebuilds the
network from `DIR/config.json`, restores the parameters of the latest (or given)
Orbax checkpoint onto one device, and runs the jitted eval-mode forward pass on
ImageNet-normalised images. Class names come from `DIR/labels.json`.
"""
from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np
from etils import epath

from fashionnet_jax import labels as labels_lib
from fashionnet_jax.checkpointing import Checkpointer
from fashionnet_jax.models import create_model
from fashionnet_jax.optim import make_optimizer
from fashionnet_jax.stages import Schedule
from fashionnet_jax.train_step import abstract_train_state, merge_model, split_model
from flax import nnx


class CheckpointNotFoundError(FileNotFoundError):
  """No run (config.json) or no checkpoint where the user pointed."""


def _resolve(workdir, checkpoint):
  if checkpoint:
    path = epath.Path(checkpoint)
    if not path.name.isdigit():
      raise CheckpointNotFoundError(
          f"{path}: not a checkpoint step folder (expected WORKDIR/checkpoints/<step>)")
    return path.parent.parent, int(path.name)
  if not workdir:
    raise CheckpointNotFoundError("give --workdir or --checkpoint")
  return epath.Path(workdir), None


class Predictor:

  def __init__(self, workdir=None, checkpoint=None):
    workdir, step = _resolve(workdir, checkpoint)
    config_path = workdir / "config.json"
    if not config_path.exists():
      raise CheckpointNotFoundError(f"{config_path}: no training run here (config.json missing)")
    self.config = config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    self.labels = labels_lib.load(workdir)
    self.image_size = int(config.image_size)
    seed = int(config.seed)
    model_fn = lambda: create_model(config.model, seed=seed)
    schedule = Schedule(config.stages, config.num_rounds)
    abstract = abstract_train_state(model_fn, make_optimizer(config, schedule.total_steps), seed)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            abstract)
    ckpt = Checkpointer(workdir, every_steps=0, keep=1 << 30, async_save=False)
    self.step = ckpt.latest_step() if step is None else step
    if self.step is None:
      raise CheckpointNotFoundError(f"{workdir / 'checkpoints'}: no checkpoint")
    if self.step not in ckpt.manager.all_steps():
      raise CheckpointNotFoundError(f"{workdir / 'checkpoints' / str(self.step)}: no such checkpoint")
    state = ckpt.restore_state_only(abstract, self.step)
    ckpt.close()
    self.graphdef = split_model(nnx.eval_shape(model_fn))[0]
    self.params, self.model_state = state.params, state.model_state
    self._forward = jax.jit(
        lambda p, s, x: merge_model(self.graphdef, p, s)(x, train=False))

  def __call__(self, images) -> dict[str, np.ndarray]:
    """images: [B, S, S, 3] float32, ImageNet-normalised (input_pipeline's eval transform)."""
    out = self._forward(self.params, self.model_state, np.asarray(images, np.float32))
    return jax.tree.map(np.asarray, out)
