"""Per-example image and landmark transforms (pure NumPy / PIL, no TF, no JAX).

Geometry convention: continuous coordinates with pixel centres at half-integers.
Pixel p (0-based, the index DeepFashion's files write) spans [p, p + 1) and
its centre is p + 0.5; normalised, x = (p + 0.5) / W. Under this convention
PIL's `resize(box=...)` and `transpose(FLIP_LEFT_RIGHT)` are exact maps (the
flip is x -> 1 - x, i.e. pixel p -> W - 1 - p), and models/landmark_pooling's
cell centres are in it too (VGG's cell j at 16(j + 0.5), pixel index 16j + 7.5).
The TFDS records keep the released contract (x = p / W, docs/deepfashion.md); the
pipeline converts once, where a record is read (`pixel_centres`), and
everything downstream (crop, flip, the network's targets and outputs,
evaluation) uses the convention. Whatever shows or writes pixels converts back
(`pixel_index`: x·W - 0.5), so that a written landmark is a released-style
pixel index.

A crop is a box (x0, y0, x1, y1) in coordinates normalised by the source
image's width and height; after `decode_crop_resize` the crop box is the
network input, so a landmark maps to `(xy - (x0, y0)) / (x1 - x0, y1 - y0)`.
Images stay uint8 until `normalize_batch`, which works on a whole batch at once.
"""

import io

import numpy as np
from PIL import Image

from fashionnet_jax.schema import FLIP_PERMUTATION, TRUNCATED, UNUSED

# ImageNet statistics (RGB, on [0, 1] pixels) used by the VGG-16/ResNet-50 weights.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

_FLIP = np.array(FLIP_PERMUTATION)

# ITU-R 601 luma, the grey used by PIL's ImageEnhance and torchvision.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# A pixel index p is the continuous coordinate p + PIXEL_CENTRE.
PIXEL_CENTRE = 0.5


def image_size(image, name="image"):
  """(width, height) of JPEG/PNG bytes (header only, no decode) or of a decoded [H, W, C] array.

  Raises: ValueError naming `name` if the bytes are not an image.
  """
  if isinstance(image, np.ndarray):
    return image.shape[1], image.shape[0]
  try:
    with Image.open(io.BytesIO(image)) as img:
      return img.size
  except (OSError, ValueError, SyntaxError) as e:
    raise ValueError(f"{name}: not a decodable image ({e})") from e


def pixel_centres(landmarks, visibility, width, height):
  """A record's landmarks (pixel index / (W, H), as released) -> the pixel-centre convention.

  x = (p + 0.5) / W, y = (q + 0.5) / H for present slots; unused slots (3) stay (0, 0).
  """
  landmarks = np.asarray(landmarks, np.float32)
  present = np.asarray(visibility) != UNUSED
  shift = np.array([PIXEL_CENTRE / width, PIXEL_CENTRE / height], np.float32)
  return np.where(present[:, None], landmarks + shift, 0.0).astype(np.float32)


def pixel_index(xy):
  """Continuous pixel coordinates (pixel-centre convention) -> released-style pixel indices."""
  return np.asarray(xy, np.float32) - PIXEL_CENTRE


def bbox_crop(bbox, margins):
  """Crop box around a tfds BBox, clipped to the image.

  Args:
    bbox: (ymin, xmin, ymax, xmax) normalised, as the TFDS `bbox` feature.
    margins: (left, top, right, bottom) margins as fractions of the bbox's
      width / height (a scalar applies to all four sides).

  Returns:
    (x0, y0, x1, y1) float32 normalised crop box inside [0, 1].
  """
  ymin, xmin, ymax, xmax = (float(v) for v in bbox)
  w, h = max(xmax - xmin, 1e-6), max(ymax - ymin, 1e-6)
  left, top, right, bottom = np.broadcast_to(np.asarray(margins, np.float32), (4,))
  x0, y0 = max(xmin - left * w, 0.0), max(ymin - top * h, 0.0)
  x1, y1 = min(xmax + right * w, 1.0), min(ymax + bottom * h, 1.0)
  if x1 - x0 < 1e-3 or y1 - y0 < 1e-3:  # degenerate bbox: fall back to the image
    return np.array([0.0, 0.0, 1.0, 1.0], np.float32)
  return np.array([x0, y0, x1, y1], np.float32)


def jittered_margins(rng, margin, jitter):
  """Per-side margins `margin + U(-jitter, jitter)`, never cutting into the bbox."""
  return np.maximum(margin + rng.uniform(-jitter, jitter, size=4), 0.0)


# EXIF orientation (tag 0x0112) -> (swap axes, reverse display x, reverse display y): what
# turns the stored pixels upright (orientation 6: transposed, then x reversed = 90° clockwise).
EXIF_TRANSPOSES = {
    1: (False, False, False),
    2: (False, True, False),
    3: (False, True, True),
    4: (False, False, True),
    5: (True, False, False),
    6: (True, True, False),
    7: (True, True, True),
    8: (True, False, True),
}
# The same maps as PIL's transposes (ImageOps.exif_transpose's table).
_PIL_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def open_image(data: bytes) -> Image.Image:
  """PIL's lazy image of JPEG/PNG bytes (header read, nothing decoded), other formats by Image.open.

  JPEG and PNG are opened by their plugin classes directly: Image.open's own
  decompression-bomb check (a warning above Image.MAX_IMAGE_PIXELS, an error
  above twice that) would otherwise race the caller's own pixel limit.
  """
  from PIL import JpegImagePlugin, PngImagePlugin

  if data[:3] == JPEG_MAGIC:
    return JpegImagePlugin.JpegImageFile(io.BytesIO(data))
  if data[:8] == PNG_MAGIC:
    return PngImagePlugin.PngImageFile(io.BytesIO(data))
  return Image.open(io.BytesIO(data))


def content_box(orientation, decoded, exact):
  """Where the image lies in a decoded (then EXIF-transposed) raster: (x0, y0, x1, y1) pixels.

  JPEG DCT scaling decodes W x H at 1/s to ceil(W / s) x ceil(H / s) pixels of
  which W / s x H / s are the image (the last row and column partly padding);
  a transpose that reverses an axis moves that padding to the start.

  Args:
    orientation: EXIF orientation 1..8.
    decoded: (width, height) of the decoded raster, as stored (before the transpose).
    exact: (width, height) of the image in that raster's pixels (W / s, H / s).
  """
  swap, reverse_x, reverse_y = EXIF_TRANSPOSES[orientation]
  (dw, dh), (ew, eh) = (decoded[::-1], exact[::-1]) if swap else (decoded, exact)
  x0 = dw - ew if reverse_x else 0.0
  y0 = dh - eh if reverse_y else 0.0
  return x0, y0, x0 + ew, y0 + eh


def _rgb(img):
  """Any PIL mode -> RGB as TensorFlow's decode_png/decode_jpeg(channels=3) give it.

  16-bit grey keeps its high byte (libpng's strip_16; PIL's own I;16 -> RGB
  clips to white); alpha is dropped, not composited; a palette's transparency
  is ignored; CMYK follows PIL's (255 - C)(255 - K) / 255, libjpeg's Adobe rule.
  """
  if img.mode.startswith("I;16"):
    img = Image.fromarray((np.asarray(img) >> 8).astype(np.uint8))
  return img if img.mode == "RGB" else img.convert("RGB")


def decode_crop_resize(jpeg, crop, size, *, flip=False, color=None, name="image", orientation=1):
  """Decodes `jpeg`, crops the normalised box `crop` and resizes it to size×size.

  Then optionally applies `color_jitter(color)` and a horizontal flip.

  JPEG DCT scaling (`Image.draft`) decodes at 1/2, 1/4 or 1/8 resolution when
  the crop still has at least `size` pixels per side, which is most of the
  saving on large photos. The crop is done by `resize(box=...)` with float
  coordinates, so no pixels are rounded away. An EXIF `orientation` other than 1
  turns the (drafted) image upright before the crop; `crop` is then in the
  upright image's frame.

  Returns: uint8 [size, size, 3] RGB.
  Raises: ValueError naming `name` if the bytes are not a decodable image.
  """
  try:
    if isinstance(jpeg, np.ndarray):  # a source that decoded already
      img = Image.fromarray(jpeg.squeeze(-1) if jpeg.shape[-1] == 1 else jpeg)
    else:
      img = open_image(jpeg)
    stored = img.size
    swap = EXIF_TRANSPOSES[orientation][0]
    width, height = stored[::-1] if swap else stored  # the upright image's
    shrink = min((crop[2] - crop[0]) * width, (crop[3] - crop[1]) * height) / size
    scale = 1.0
    if shrink >= 2 and getattr(img, "format", None) == "JPEG":
      drafted = img.draft("RGB", (int(stored[0] / shrink), int(stored[1] / shrink)))
      if drafted is not None:
        scale = stored[0] / drafted[1][2]  # draft reports (0, 0, W / s, H / s)
    grey = img.mode in ("1", "L")  # resized as one channel: the same pixels, a third of the memory
    if img.mode == "1":
      img = img.convert("L")
    elif not grey:
      img = _rgb(img)
    x0 = y0 = 0.0
    if orientation != 1:
      exact = (stored[0] / scale, stored[1] / scale)
      x0, y0, _, _ = content_box(orientation, img.size, exact)
      img = img.transpose(_PIL_TRANSPOSE[orientation])
    box = (
        x0 + crop[0] * width / scale,
        y0 + crop[1] * height / scale,
        x0 + crop[2] * width / scale,
        y0 + crop[3] * height / scale,
    )
    # Decoding happens lazily (here at the latest): a truncated JPEG fails in the resize.
    img = img.resize((size, size), Image.BILINEAR, box=box)
    if grey:
      img = img.convert("RGB")
  except (OSError, ValueError, SyntaxError) as e:
    raise ValueError(f"{name}: not a decodable image ({e})") from e
  if color is not None:
    img = color_jitter(img, color)
  if flip:
    img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  return np.asarray(img, np.uint8)


def crop_landmarks(landmarks, visibility, crop):
  """Maps landmarks into the crop's frame.

  A present landmark (visibility 0 or 1) that falls outside the crop becomes
  truncated (2) and its coordinates are clipped into [0, 1]; unused slots (3)
  keep coordinates (0, 0).
  """
  landmarks = np.asarray(landmarks, np.float32)
  visibility = np.asarray(visibility, np.int32).copy()
  x0, y0, x1, y1 = crop
  xy = (landmarks - np.array([x0, y0], np.float32)) / np.array([x1 - x0, y1 - y0], np.float32)
  present = visibility != UNUSED
  outside = np.any((xy < 0.0) | (xy > 1.0), axis=-1)
  visibility[present & outside] = TRUNCATED
  xy = np.where(present[:, None], np.clip(xy, 0.0, 1.0), 0.0)
  return xy.astype(np.float32), visibility


def flip_landmarks(landmarks, visibility):
  """Horizontal flip: x → 1 - x and left/right slots (and visibilities) swapped.

  Exact for PIL's FLIP_LEFT_RIGHT (pixel p → W - 1 - p) in the pixel-centre
  convention of this module; landmarks must be in it (`pixel_centres`).
  """
  landmarks = np.asarray(landmarks, np.float32)
  visibility = np.asarray(visibility, np.int32)
  present = visibility != UNUSED
  mirrored = np.where(present[:, None], landmarks * [-1.0, 1.0] + [1.0, 0.0], 0.0)
  return mirrored[_FLIP].astype(np.float32), visibility[_FLIP]


def uncrop_landmarks(landmarks, crop):
  """The inverse of `crop_landmarks`' map: network-input [0, 1] → the released image's frame.

  landmarks [..., L, 2] in the crop's frame, crop [..., 4] = (x0, y0, x1, y1)
  normalised by the image size; returns (x, y) normalised by the image size in
  the pixel-centre convention (× (W, H) gives continuous pixels, `pixel_index`
  of those the released-style pixel index).
  """
  landmarks = np.asarray(landmarks, np.float32)
  crop = np.asarray(crop, np.float32)
  origin = crop[..., None, :2]
  return origin + landmarks * (crop[..., None, 2:] - origin)


def color_jitter_factors(rng, strength):
  """(brightness, contrast, saturation) factors, each U(1 - s, 1 + s)."""
  if strength <= 0:
    return np.ones(3, np.float32)
  return rng.uniform(1.0 - strength, 1.0 + strength, size=3).astype(np.float32)


def color_jitter(img, factors):
  """Brightness, contrast and saturation on a PIL RGB image, in one uint8 pass.

  The three are linear in RGB, so they compose into one 3×4 colour matrix
  (applied in C by `Image.convert`): brightness b·x, contrast about the mean
  luma μ (c·x + (1 - c)·μ) and saturation about each pixel's luma
  (s·x + (1 - s)·luma(x)). Only the final result is clipped to [0, 255].
  """
  b, c, s = (float(f) for f in factors)
  if b == c == s == 1.0:
    return img
  small = img.reduce(max(1, min(8, *img.size)))  # the mean luma needs no full-size pass
  mean_luma = float(np.asarray(small, np.float32).reshape(-1, 3).mean(0) @ _LUMA)
  matrix = b * c * (s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), _LUMA))
  offset = np.full((3, 1), (1.0 - c) * b * mean_luma)
  return img.convert("RGB", matrix=tuple(np.concatenate([matrix, offset], 1).ravel()))


def normalize_batch(images):
  """uint8 [B, S, S, 3] → ImageNet-normalised float32, vectorised over the batch.

  The per-channel constants are tiled along a whole image row so numpy's
  inner loop runs over S·3 values instead of 3 (about 4× faster).
  """
  images = np.asarray(images)
  row = images.shape[-2] * images.shape[-1]
  scale = np.tile(1.0 / (255.0 * IMAGENET_STD), row // 3)
  offset = np.tile(-IMAGENET_MEAN / IMAGENET_STD, row // 3)
  x = images.astype(np.float32).reshape(-1, row)
  x *= scale
  x += offset
  return x.reshape(images.shape)


def normalize_on_device(images):
  """jnp: uint8 images -> ImageNet-normalised float32; float images pass unchanged.

  For pipelines with `config.input.normalize_on_device` (uint8 batches); float
  inputs are taken as normalised already (tests, `inference.predictor.Predictor`).
  """
  import jax.numpy as jnp

  if images.dtype != jnp.uint8:
    return images
  x = images.astype(jnp.float32)
  return (x - 255.0 * IMAGENET_MEAN) / (255.0 * IMAGENET_STD)


def denormalize(images):
  """Inverse of `normalize_batch` without jitter (for plots and tests): → uint8."""
  x = np.asarray(images, np.float32) * (255.0 * IMAGENET_STD) + 255.0 * IMAGENET_MEAN
  return np.clip(np.round(x), 0, 255).astype(np.uint8)
