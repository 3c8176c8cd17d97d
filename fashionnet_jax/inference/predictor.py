"""A trained FashionNet, restored from a run's workdir for inference.

`Predictor(workdir=DIR)` (or `checkpoint=DIR/checkpoints/STEP` or `DIR/best/STEP`)
rebuilds the network from `DIR/config.json`, restores the parameters of the run's
model (the step chosen on validation when the run selects one, else the newest
checkpoint; `training.runs.load_run`) or of the given step onto one device, says
which step it loaded (`describe()`), and runs the jitted eval-mode forward pass
(`models.functional.make_predict_fn`, the one evaluation uses) on
ImageNet-normalised images. Class names come from `DIR/labels.json`.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from absl import logging
from etils import epath

from fashionnet_jax.data import labels as labels_lib
from fashionnet_jax.data import transforms
from fashionnet_jax.models.functional import abstract_graphdef, make_predict_fn
from fashionnet_jax.training.runs import CHECKPOINTS_FOLDER, RunNotFoundError, load_run, model_fn
from fashionnet_jax.training.selection import BEST_FOLDER

# The Predictor's "nothing to load here" error is the run reader's.
CheckpointNotFoundError = RunNotFoundError


def _resolve(workdir, checkpoint):
  """(run folder, step, folder) of --workdir or --checkpoint RUN/{checkpoints,best}/STEP."""
  if checkpoint:
    path = epath.Path(checkpoint)
    if not path.name.isdigit() or path.parent.name not in (CHECKPOINTS_FOLDER, BEST_FOLDER):
      raise CheckpointNotFoundError(
          f"{path}: not a checkpoint step folder (expected WORKDIR/{CHECKPOINTS_FOLDER}/<step> "
          f"or WORKDIR/{BEST_FOLDER}/<step>)"
      )
    return path.parent.parent, int(path.name), path.parent.name
  if not workdir:
    raise CheckpointNotFoundError("give --workdir or --checkpoint")
  return epath.Path(workdir), None, None


class Predictor:

  def __init__(self, workdir=None, checkpoint=None):
    workdir, step, folder = _resolve(workdir, checkpoint)
    run = load_run(workdir, step, folder)
    self.workdir, self.config, self.step = run.workdir, run.config, run.step
    self.selection = run.selection  # best/'s metadata when this is the step chosen on validation
    self.checkpoint = run.workdir / run.folder / str(run.step)  # the step folder it loaded
    self.describe = run.describe
    logging.info("Loaded %s.", run.describe())
    self.labels = labels_lib.load(workdir)
    self.image_size = int(self.config.image_size)
    self.graphdef = abstract_graphdef(model_fn(self.config))
    self.params, self.model_state = run.params, run.model_state
    self._forward = make_predict_fn(self.graphdef)

  def __call__(self, images) -> dict[str, np.ndarray]:
    """images: [B, S, S, 3] float32, ImageNet-normalised (the eval pipeline's transform)."""
    out = self._forward(self.params, self.model_state, np.asarray(images, np.float32))
    return jax.tree.map(np.asarray, out)

  def predict_uint8(self, images) -> dict[str, np.ndarray]:
    """images: uint8 [B, S, S, 3] (`inference.images.load_image(...).image`) → the network's outputs.

    The batch is zero-padded to the next power of two, so a stream of batches
    of any size compiles at most log2(B) + 1 times; each image's outputs do not
    depend on its batch (eval mode).
    """
    images = np.asarray(images, np.uint8)
    n = len(images)
    padded = 1 << math.ceil(math.log2(max(n, 1)))
    batch = np.zeros((padded, *images.shape[1:]), np.uint8)
    batch[:n] = images
    out = self(transforms.normalize_batch(batch))
    return {k: v[:n] for k, v in out.items()}
