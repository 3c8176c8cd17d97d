"""A trained FashionNet, restored from a run's workdir for inference.

`Predictor(workdir=DIR)` (or `checkpoint=DIR/checkpoints/STEP`) rebuilds the
network from `DIR/config.json`, restores the parameters of the latest (or given)
Orbax checkpoint onto one device, and runs the jitted eval-mode forward pass on
ImageNet-normalised images. Class names come from `DIR/labels.json`.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math

import jax
import ml_collections
import numpy as np
from etils import epath
from PIL import Image, ImageOps, UnidentifiedImageError

from fashionnet_jax import labels as labels_lib
from fashionnet_jax.checkpointing import Checkpointer
from fashionnet_jax.data import transforms
from fashionnet_jax.models import create_model
from fashionnet_jax.optim import make_optimizer
from fashionnet_jax.stages import Schedule
from fashionnet_jax.train_step import abstract_graphdef, abstract_train_state, merge_model


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
    self.workdir = workdir
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
    self.graphdef = abstract_graphdef(model_fn)
    self.params, self.model_state = state.params, state.model_state
    self._forward = jax.jit(
        lambda p, s, x: merge_model(self.graphdef, p, s)(x, train=False))

  def __call__(self, images) -> dict[str, np.ndarray]:
    """images: [B, S, S, 3] float32, ImageNet-normalised (input_pipeline's eval transform)."""
    out = self._forward(self.params, self.model_state, np.asarray(images, np.float32))
    return jax.tree.map(np.asarray, out)

  def predict_uint8(self, images) -> dict[str, np.ndarray]:
    """images: uint8 [B, S, S, 3] (`load_image(...).image`) → the network's outputs.

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


# --- Arbitrary image files (predict / retrieve) -----------------------------


class ImageError(ValueError):
  """An input file that is not a readable image, or a bbox that misses it."""


@dataclasses.dataclass(frozen=True)
class LoadedImage:
  """One image file prepared for the network, and how to map back to it."""
  path: str
  image: np.ndarray  # uint8 [S, S, 3]: the crop, resized to the network input
  crop: np.ndarray   # (x0, y0, x1, y1) of the crop, normalised by the image's size
  size: tuple[int, int]  # (width, height) of the original image, after EXIF rotation


def load_image(path, image_size: int, bbox=None, crop_margin: float = 0.1) -> LoadedImage:
  """Reads one image file the way evaluation reads a dataset image.

  Without a bbox the network sees the whole image (resized, not padded); with a
  pixel bbox (x1, y1, x2, y2) it sees the bbox plus `crop_margin` per side, as in
  the eval pipeline. Photos carrying an EXIF rotation are turned upright first,
  so landmark pixels refer to the image as viewers display it.

  Raises:
    ImageError: one line naming `path` (not an image, truncated, bad bbox).
  """
  path = str(path)
  try:
    data = epath.Path(path).read_bytes()
    img = Image.open(io.BytesIO(data))
    if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
      img = ImageOps.exif_transpose(img.convert("RGB"))
      source = np.asarray(img)  # decoded already: no JPEG draft for rotated photos
    else:
      source = data  # decoded once, below, at reduced (draft) scale where it can be
    width, height = img.size
  except UnidentifiedImageError:
    raise ImageError(f"{path}: not an image (no format PIL can read)") from None
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ImageError(f"{path}: not a readable image ({_one_line(e)})") from None
  crop = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
  if bbox is not None:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if min(x2, width) - max(x1, 0) < 1 or min(y2, height) - max(y1, 0) < 1:
      raise ImageError(f"{path}: bbox {x1:g},{y1:g},{x2:g},{y2:g} does not overlap the "
                       f"{width}x{height} image")
    crop = transforms.bbox_crop((y1 / height, x1 / width, y2 / height, x2 / width), crop_margin)
  try:
    image = transforms.decode_crop_resize(source, crop, image_size, name=path)
  except (OSError, ValueError) as e:
    raise ImageError(f"{path}: not a readable image ({_one_line(e)})") from None
  return LoadedImage(path, image, crop, (width, height))


def landmarks_to_pixels(landmarks, crop, size) -> np.ndarray:
  """Landmarks in [0, 1] of the network input → pixels (x, y) of the original image.

  The inverse of the eval pipeline's crop: input → crop box (normalised by the
  image size, as DeepFashion's landmarks / (W, H)) → × (W, H).
  """
  landmarks = np.asarray(landmarks, np.float32)
  x0, y0, x1, y1 = (float(v) for v in crop)
  width, height = size
  return np.stack([(x0 + landmarks[..., 0] * (x1 - x0)) * width,
                   (y0 + landmarks[..., 1] * (y1 - y0)) * height], -1)


def _one_line(error) -> str:
  return " ".join(str(error).split()) or type(error).__name__


_EXIF_ORIENTATION = 0x0112
