"""Arbitrary image files for the network: read, crop and resize as evaluation does.

`load_image(path, image_size, bbox)` (or `load_image_bytes` for an upload)
reads any PIL image (EXIF rotation applied), crops it by `crop_rule` and
resizes it to the network input; `landmarks_to_pixels` maps the network's
landmarks back to the file's pixels. Used by `predict`, `retrieve` and serving.

The crop rule, the same in `predict`, `retrieve` and `serve`: an image with a
pixel bbox (x1, y1, x2, y2) is cropped as evaluation crops a dataset image (the
bbox normalised and clipped as the TFDS builder stores it, plus the run's
`input.crop_margin` per side: `transforms.bbox_crop`, then
`transforms.decode_crop_resize`); an image without a bbox is taken whole
(resized, not padded). Every answer says which: `"crop": "bbox"` or
`"crop": "whole image"`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from etils import epath

from fashionnet_jax.data import annotations, transforms
from fashionnet_jax.errors import FashionNetError, one_line
from fashionnet_jax.inference import decode

# The two values of "crop" in every answer.
CROP_BBOX = "bbox"
CROP_WHOLE_IMAGE = "whole image"

# `predict` and `retrieve`'s pixel limit: PIL's own default refusal (2 x Image.MAX_IMAGE_PIXELS),
# now ours; the server sets its own (--max-pixels).
MAX_PIXELS = 178_956_970


class ImageError(FashionNetError, ValueError):
  """An input file that is not a readable image, or a bbox that misses it."""


class BBoxError(ImageError):
  """A bbox that is malformed or does not overlap its image."""


class ImageTooLargeError(ImageError):
  """An image whose pixel count is over the caller's limit (read from its header)."""


@dataclasses.dataclass(frozen=True)
class LoadedImage:
  """One image file prepared for the network, and how to map back to it."""

  path: str
  image: np.ndarray  # uint8 [S, S, 3]: the crop, resized to the network input
  crop: np.ndarray  # (x0, y0, x1, y1) of the crop, normalised by the image's size
  size: tuple[int, int]  # (width, height) of the original image, after EXIF rotation
  crop_kind: str = CROP_WHOLE_IMAGE  # CROP_BBOX or CROP_WHOLE_IMAGE: which rule cropped it


def crop_margin(config) -> float:
  """The margin evaluation adds around a bbox, from a run's config."""
  return float(config.input.get("crop_margin", 0.1))


def parse_bbox(text: str, name: str = "bbox") -> tuple[float, float, float, float]:
  """'x1,y1,x2,y2' in pixels → four floats with x1 < x2 and y1 < y2.

  Raises:
    BBoxError: one line naming `name` and the text.
  """
  try:
    values = tuple(float(v) for v in text.split(","))
  except ValueError:
    values = ()
  if len(values) != 4 or not all(np.isfinite(values)):
    raise BBoxError(f"{name} {text!r}: expected four numbers x1,y1,x2,y2 (pixels)")
  if not (values[0] < values[2] and values[1] < values[3]):
    raise BBoxError(f"{name} {text!r}: need x1 < x2 and y1 < y2")
  return values


def bboxes_for(texts, count: int, name: str = "--bbox") -> list | None:
  """Command-line bboxes: given once (for all `count` images) or once per image, in order.

  None without any (every image whole). Raises BBoxError (one line).
  """
  if not texts:
    return None
  boxes = [parse_bbox(text, name) for text in texts]
  if len(boxes) == 1:
    return boxes * count
  if len(boxes) != count:
    raise BBoxError(f"{len(boxes)} {name} for {count} images: give one for all or one per image")
  return boxes


def crop_rule(bbox, width: int, height: int, margin: float) -> tuple[np.ndarray, str]:
  """The one rule for what of an image the network sees: (crop box, crop kind).

  With a pixel bbox (x1, y1, x2, y2): the bbox normalised and clipped exactly as
  the TFDS builder stores it (`annotations.normalized_bbox`, float32 as the
  BBox feature), then `transforms.bbox_crop` with the eval `margin`, as the eval
  pipeline does. Without one: the whole image.

  Raises:
    BBoxError: a bbox that does not overlap the width x height image.
  """
  if bbox is None:
    return np.array([0.0, 0.0, 1.0, 1.0], np.float32), CROP_WHOLE_IMAGE
  x1, y1, x2, y2 = (float(v) for v in bbox)
  if min(x2, width) - max(x1, 0) < 1 or min(y2, height) - max(y1, 0) < 1:
    raise BBoxError(
        f"bbox {x1:g},{y1:g},{x2:g},{y2:g} does not overlap the " f"{width}x{height} image"
    )
  normalized = np.asarray(annotations.normalized_bbox((x1, y1, x2, y2), width, height), np.float32)
  return transforms.bbox_crop(normalized, margin), CROP_BBOX


def load_image(
    path, image_size: int, bbox=None, crop_margin: float = 0.1, max_pixels: int | None = MAX_PIXELS
) -> LoadedImage:
  """Reads one image file the way evaluation reads a dataset image.

  What the network sees follows `crop_rule`: with a pixel bbox (x1, y1, x2,
  y2) the bbox plus `crop_margin` per side, as the eval pipeline crops; without
  one the whole image (resized, not padded). Photos carrying an EXIF rotation are turned upright first,
  so landmark pixels refer to the image as viewers display it.

  Raises:
    ImageError: one line naming `path` (not an image, truncated, bad bbox);
      ImageTooLargeError over `max_pixels`.
  """
  path = str(path)
  try:
    data = epath.Path(path).read_bytes()
  except OSError as e:
    raise ImageError(f"{path}: not a readable image ({one_line(e)})") from None
  return load_image_bytes(data, path, image_size, bbox, crop_margin, max_pixels)


def load_image_bytes(
    data: bytes,
    name: str,
    image_size: int,
    bbox=None,
    crop_margin: float = 0.1,
    max_pixels: int | None = None,
) -> LoadedImage:
  """`load_image` of a file's bytes (an upload); `name` stands for the path in errors.

  JPEG or PNG only (what the SavedModel's TF decode reads too), checked by
  `decode.read_header` before anything is decoded: `max_pixels` (None: no
  limit, PIL's own not applied either) refuses larger images from their header
  with `ImageTooLargeError`. A JPEG decodes at reduced (draft) scale where the
  crop allows, a rotated photo too (turned upright after the draft).
  """
  path = name
  if not data:
    raise ImageError(f"{path}: empty (0 bytes)")
  try:
    header = decode.read_header(data, max_pixels)
  except decode.TooLarge as e:
    raise ImageTooLargeError(f"{path}: {e}") from None
  except decode.Refusal as e:
    raise ImageError(f"{path}: {e}") from None
  width, height = header.upright_size
  try:
    crop, kind = crop_rule(bbox, width, height, crop_margin)
  except BBoxError as e:
    raise BBoxError(f"{path}: {e}") from None
  try:
    image = transforms.decode_crop_resize(
        header.data, crop, image_size, name=path, orientation=header.orientation
    )
  except ValueError as e:  # "{path}: not a decodable image (...)", one line
    raise ImageError(one_line(e)) from None
  return LoadedImage(path, image, crop, (width, height), kind)


def landmarks_to_pixels(landmarks, crop, size) -> np.ndarray:
  """Landmarks in [0, 1] of the network input → pixels (x, y) of the original image.

  The inverse of the eval pipeline's crop: input → crop box (normalised by the
  image size, as DeepFashion's landmarks / (W, H)) → × (W, H).
  """
  return transforms.uncrop_landmarks(landmarks, crop) * np.asarray(size, np.float32)
