"""Arbitrary image files for the network: read, crop and resize as evaluation does.

`load_image(path, image_size, bbox)` (or `load_image_bytes` for an upload)
reads any PIL image (EXIF rotation applied), crops it to the bbox plus the eval
margin (or takes it whole) and resizes it to the network input;
`landmarks_to_pixels` maps the network's landmarks back to the file's pixels.
Used by `predict`, `retrieve` and serving.
"""
from __future__ import annotations

import dataclasses
import io

import numpy as np
from etils import epath
from PIL import Image, ImageOps, UnidentifiedImageError

from fashionnet_jax.data import transforms
from fashionnet_jax.errors import FashionNetError

class ImageError(FashionNetError, ValueError):
  """An input file that is not a readable image, or a bbox that misses it."""


class BBoxError(ImageError):
  """A bbox that does not overlap its image."""


class ImageTooLargeError(ImageError):
  """An image whose pixel count is over the caller's limit (read from its header)."""


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
  except OSError as e:
    raise ImageError(f"{path}: not a readable image ({_one_line(e)})") from None
  return load_image_bytes(data, path, image_size, bbox, crop_margin)


def load_image_bytes(data: bytes, name: str, image_size: int, bbox=None,
                     crop_margin: float = 0.1, max_pixels: int | None = None) -> LoadedImage:
  """`load_image` of a file's bytes (an upload); `name` stands for the path in errors.

  `max_pixels` refuses larger images from their header, before any decoding
  (decompression bombs), with `ImageTooLargeError`.
  """
  path = name
  if not data:
    raise ImageError(f"{path}: empty (0 bytes)")
  try:
    img = Image.open(io.BytesIO(data))
    if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
      raise ImageTooLargeError(f"{path}: {img.size[0]}x{img.size[1]} pixels, over the limit of "
                               f"{max_pixels}")
    if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
      img = ImageOps.exif_transpose(img.convert("RGB"))
      source = np.asarray(img)  # decoded already: no JPEG draft for rotated photos
    else:
      source = data  # decoded once, below, at reduced (draft) scale where it can be
    width, height = img.size
  except ImageError:
    raise
  except UnidentifiedImageError:
    raise ImageError(f"{path}: not an image (no format PIL can read)") from None
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ImageError(f"{path}: not a readable image ({_one_line(e)})") from None
  crop = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
  if bbox is not None:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if min(x2, width) - max(x1, 0) < 1 or min(y2, height) - max(y1, 0) < 1:
      raise BBoxError(f"{path}: bbox {x1:g},{y1:g},{x2:g},{y2:g} does not overlap the "
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
  return transforms.uncrop_landmarks(landmarks, crop) * np.asarray(size, np.float32)


def _one_line(error) -> str:
  return " ".join(str(error).split()) or type(error).__name__


_EXIF_ORIENTATION = 0x0112
