"""Per-example transforms: landmark geometry stays on the garment's pixels."""

import io

import numpy as np
from PIL import Image
import pytest

from fashionnet_jax import schema
from fashionnet_jax.data import transforms
import input_pipeline_fakes as fakes

# The data contract's slots, written out here (not read from the code under test):
# [L collar, R collar, L sleeve, R sleeve, L waistline, R waistline, L hem, R hem].
LEFT_RIGHT_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7))

SIZE = 48


def _marker_slots(image, landmarks, visibility):
  """Slot colour seen at each present, in-frame landmark's pixel."""
  seen = {}
  for slot in np.flatnonzero(visibility < 2):
    x, y = landmarks[slot]
    seen[slot] = fakes.nearest_slot_colour(image[int(y * SIZE), int(x * SIZE)])
  return seen


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.25])
def test_crop_resize_keeps_landmarks_on_their_markers(margin):
  rng = np.random.default_rng(0)
  for index in range(12):
    record = fakes.make_record(index, rng)
    crop = transforms.bbox_crop(record["bbox"], margin)
    image = transforms.decode_crop_resize(record["image"], crop, SIZE)
    landmarks, visibility = transforms.crop_landmarks(
        record["landmarks"], record["landmark_visibility"], crop
    )
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    seen = _marker_slots(image, landmarks, visibility)
    assert seen and all(seen[s] == s for s in seen), (index, seen)


def test_flip_mirrors_x_and_swaps_left_right_pairs():
  landmarks = np.arange(16, dtype=np.float32).reshape(8, 2) / 20
  visibility = np.array([0, 1, 2, 0, 3, 3, 1, 0])
  landmarks[4:6] = 0.0  # unused slots carry (0, 0)
  flipped, flipped_vis = transforms.flip_landmarks(landmarks, visibility)
  for left, right in LEFT_RIGHT_PAIRS:
    for a, b in ((left, right), (right, left)):
      assert flipped_vis[a] == visibility[b]
      if visibility[b] != 3:
        np.testing.assert_allclose(flipped[a], [1 - landmarks[b, 0], landmarks[b, 1]])
  np.testing.assert_array_equal(flipped[4:6], 0.0)  # unused stay at 0
  twice = transforms.flip_landmarks(flipped, flipped_vis)
  np.testing.assert_allclose(twice[0], landmarks, atol=1e-6)


def test_flipped_pixels_show_the_swapped_slots_markers():
  rng = np.random.default_rng(1)
  for index in range(9):
    record = fakes.make_record(index, rng)
    crop = transforms.bbox_crop(record["bbox"], 0.1)
    image = transforms.decode_crop_resize(record["image"], crop, SIZE, flip=True)
    landmarks, visibility = transforms.flip_landmarks(
        *transforms.crop_landmarks(record["landmarks"], record["landmark_visibility"], crop)
    )
    seen = _marker_slots(image, landmarks, visibility)
    # Slot s of the flipped example is the original slot FLIP_PERMUTATION[s].
    assert seen and all(seen[s] == schema.FLIP_PERMUTATION[s] for s in seen), seen


def test_landmark_pushed_out_of_the_crop_becomes_truncated():
  landmarks = np.array([[0.5, 0.5], [0.05, 0.5], [0.5, 0.95]] + [[0, 0]] * 5, np.float32)
  visibility = np.array([0, 0, 1, 3, 3, 3, 3, 3])
  xy, vis = transforms.crop_landmarks(landmarks, visibility, (0.2, 0.1, 0.8, 0.9))
  np.testing.assert_array_equal(vis, [0, 2, 2, 3, 3, 3, 3, 3])
  np.testing.assert_allclose(xy[0], [0.5, 0.5])
  assert xy.min() >= 0 and xy.max() <= 1
  np.testing.assert_array_equal(xy[3:], 0.0)


def test_bbox_crop_margins_are_clipped_to_the_image():
  crop = transforms.bbox_crop([0.1, 0.2, 0.5, 0.6], 0.5)  # (ymin, xmin, ymax, xmax)
  np.testing.assert_allclose(crop, [0.0, 0.0, 0.8, 0.7])
  margins = transforms.jittered_margins(np.random.default_rng(0), 0.1, 0.3)
  assert margins.shape == (4,) and margins.min() >= 0 and margins.max() <= 0.4


def test_draft_decoding_matches_full_decoding():
  """DCT-scaled decoding of a big photo gives (almost) the same crop."""
  rng = np.random.default_rng(2)
  record = fakes.make_record(0, rng, width=800, height=700)
  crop = transforms.bbox_crop(record["bbox"], 0.1)
  fast = transforms.decode_crop_resize(record["image"], crop, SIZE)
  from PIL import Image
  import io

  full = np.asarray(Image.open(io.BytesIO(record["image"])).convert("RGB"))
  slow = transforms.decode_crop_resize(full, crop, SIZE)  # ndarray path: no draft
  assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 4


def test_normalize_batch_matches_the_formula_and_inverts():
  images = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3)).astype(np.uint8)
  x = transforms.normalize_batch(images)
  expected = (images / 255.0 - transforms.IMAGENET_MEAN) / transforms.IMAGENET_STD
  assert x.dtype == np.float32 and x.shape == images.shape
  np.testing.assert_allclose(x, expected, atol=1e-5)
  np.testing.assert_array_equal(transforms.denormalize(x), images)


def test_color_jitter_brightness_contrast_saturation():
  from PIL import Image

  pixels = np.random.default_rng(0).integers(20, 120, (16, 16, 3)).astype(np.uint8)
  img = Image.fromarray(pixels)
  out = lambda f: np.asarray(transforms.color_jitter(img, f)).astype(int)
  assert transforms.color_jitter(img, (1, 1, 1)) is img
  np.testing.assert_allclose(out((2, 1, 1)), 2 * pixels.astype(int), atol=1)
  flat = out((1, 0, 1))  # contrast 0: every pixel becomes the mean luma
  assert flat.max() - flat.min() <= 1
  assert abs(flat.mean() - (pixels @ [0.299, 0.587, 0.114]).mean()) < 1
  grey = out((1, 1, 0))  # saturation 0: each pixel becomes its luma
  np.testing.assert_allclose(grey[..., 0], pixels @ [0.299, 0.587, 0.114], atol=1)
  assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1


def test_undecodable_image_names_the_example():
  with pytest.raises(ValueError, match="img/broken.jpg"):
    transforms.decode_crop_resize(b"not a jpeg", (0, 0, 1, 1), SIZE, name="img/broken.jpg")


def test_truncated_jpeg_names_the_example():
  buffer = io.BytesIO()
  Image.fromarray(np.full((120, 90, 3), 127, np.uint8)).save(buffer, "JPEG")
  truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
  # The header parses; decoding fails lazily inside the resize.
  with pytest.raises(ValueError, match="img/cut.jpg: not a decodable image"):
    transforms.decode_crop_resize(truncated, (0, 0, 1, 1), SIZE, name="img/cut.jpg")


# One bright pixel and its label, through crop + resize + flip. The source is
# 40×30 with the pixel at index (7, 12); the crop is the pixel box [4, 24) × [6, 26),
# resized to 20 (identity) or 40 (×2): flipped, the pixel lands at index
# S - 1 - (7 - 4)·S/20 - (S/20 - 1)/2 in x and (12 - 6 + 0.5)·S/20 - 0.5 in y.
MARK_SOURCE, MARK_PIXEL, MARK_BOX = (40, 30), (7, 12), (4, 6, 24, 26)


def _one_pixel_png():
  pixels = np.zeros(MARK_SOURCE[::-1] + (3,), np.uint8)
  pixels[MARK_PIXEL[1], MARK_PIXEL[0]] = 255
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "PNG")
  return buffer.getvalue()


def _bright_centroid(image):
  """(x, y) pixel index of the brightness centroid (the pixel itself when unresampled)."""
  weights = image.astype(np.float64).sum(-1)
  rows, cols = np.indices(weights.shape)
  return np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()


def _expected_flipped_pixel(size):
  scale = size / 20
  x = size - 1 - ((MARK_PIXEL[0] - MARK_BOX[0] + 0.5) * scale - 0.5)
  y = (MARK_PIXEL[1] - MARK_BOX[1] + 0.5) * scale - 0.5
  return np.array([x, y])


def _mark_record():
  """The released contract: landmarks are pixel index / (W, H), slot 0 (left collar)."""
  width, height = MARK_SOURCE
  landmarks = np.zeros((8, 2), np.float32)
  landmarks[0] = (MARK_PIXEL[0] / width, MARK_PIXEL[1] / height)
  visibility = np.array([0] + [3] * 7, np.int32)
  x0, y0, x1, y1 = MARK_BOX
  bbox = np.array([y0 / height, x0 / width, y1 / height, x1 / width], np.float32)
  return {
      "image": _one_pixel_png(),
      "bbox": bbox,
      "landmarks": landmarks,
      "landmark_visibility": visibility,
  }


@pytest.mark.parametrize("size", [20, 40])
def test_flipped_one_pixel_mark_and_its_label_land_together(size):
  record = _mark_record()
  width, height = transforms.image_size(record["image"])
  assert (width, height) == MARK_SOURCE
  crop = transforms.bbox_crop(record["bbox"], 0.0)
  image = transforms.decode_crop_resize(record["image"], crop, size, flip=True)
  landmarks = transforms.pixel_centres(
      record["landmarks"], record["landmark_visibility"], width, height
  )
  landmarks, visibility = transforms.flip_landmarks(
      *transforms.crop_landmarks(landmarks, record["landmark_visibility"], crop)
  )
  seen = _bright_centroid(image)
  np.testing.assert_allclose(seen, _expected_flipped_pixel(size), atol=0.02)
  # The left collar became the right collar (slot 1), on the bright pixel.
  assert visibility[1] == 0 and visibility[0] == 3
  np.testing.assert_allclose(transforms.pixel_index(landmarks[1] * size), seen, atol=0.05)
  if size == 20:  # unresampled: the label is the bright pixel's own index
    assert tuple(np.unravel_index(image.sum(-1).argmax(), image.shape[:2])[::-1]) == tuple(
        np.round(transforms.pixel_index(landmarks[1] * size)).astype(int)
    )


class _FlipRng:
  """An rng for Preprocess that always flips and draws no jitter."""

  def random(self):
    return 0.0

  def uniform(self, low, high, size=None):
    del low, high
    return np.zeros(size)


def test_train_preprocess_flips_a_one_pixel_mark_with_its_label():
  from fashionnet_jax.data.preprocess import Preprocess

  size = 40
  preprocess = Preprocess(image_size=size, num_attributes=4, train=True, crop_margin=0.0, flip=True)
  example = preprocess(_mark_record(), _FlipRng(), "one-pixel")
  seen = _bright_centroid(example["image"])
  np.testing.assert_allclose(seen, _expected_flipped_pixel(size), atol=0.02)
  assert example["landmark_visibility"][1] == 0
  np.testing.assert_allclose(
      transforms.pixel_index(example["landmarks"][1] * size), seen, atol=0.05
  )


def test_pixel_centres_and_back():
  landmarks = np.array([[7 / 40, 12 / 30]] + [[0, 0]] * 7, np.float32)
  visibility = np.array([1] + [3] * 7)
  centres = transforms.pixel_centres(landmarks, visibility, 40, 30)
  np.testing.assert_allclose(centres[0], [7.5 / 40, 12.5 / 30], rtol=1e-6)
  np.testing.assert_array_equal(centres[1:], 0.0)  # unused slots stay (0, 0)
  np.testing.assert_allclose(transforms.pixel_index(centres[0] * [40, 30]), [7, 12], atol=1e-5)
  assert transforms.image_size(np.zeros((30, 40, 3), np.uint8)) == (40, 30)
