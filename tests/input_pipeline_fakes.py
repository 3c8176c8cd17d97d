"""In-memory records in the TFDS `deepfashion` feature layout, with landmark markers.

Each present landmark is drawn as a disc in its slot's colour, so a test can
check that after any crop / resize / flip the pixel at a transformed landmark
still shows that landmark's colour.
"""

import io

import ml_collections
import numpy as np
from PIL import Image, ImageDraw

# One saturated colour per landmark slot, far apart from each other and the greys.
PALETTE = np.array(
    [
        (255, 0, 0),
        (0, 200, 0),
        (0, 0, 255),
        (255, 255, 0),
        (255, 0, 255),
        (0, 255, 255),
        (255, 128, 0),
        (128, 0, 255),
    ],
    np.float32,
)
SLOTS_BY_TYPE = {0: (0, 1, 2, 3, 6, 7), 1: (4, 5, 6, 7), 2: tuple(range(8))}
MARKER_RADIUS = 7


def nearest_slot_colour(pixel):
  return int(np.argmin(np.linalg.norm(PALETTE - np.asarray(pixel, np.float32), axis=-1)))


def make_record(
    index, rng, *, num_attributes=6, width=140, height=120, images_per_item=3, fields=None
):
  """One record: grey background, a darker garment box, a marker per landmark."""
  bw, bh = rng.uniform(0.55, 0.8) * width, rng.uniform(0.55, 0.8) * height
  x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
  clothes_type = index % 3
  slots = SLOTS_BY_TYPE[clothes_type]
  # Landmarks on a 4×2 grid inside the box (well apart), in random cells.
  cells = rng.permutation(8)[: len(slots)]
  landmarks = np.zeros((8, 2), np.float32)
  visibility = np.full((8,), 3, np.int32)
  image = Image.new("RGB", (width, height), (128, 128, 128))
  draw = ImageDraw.Draw(image)
  draw.rectangle([x0, y0, x0 + bw, y0 + bh], fill=(90, 90, 90))
  for slot, cell in zip(slots, cells):
    cx = x0 + bw * (0.25 + 0.5 * (cell % 2))
    cy = y0 + bh * (0.125 + 0.25 * (cell // 2))
    r = MARKER_RADIUS
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(c) for c in PALETTE[slot]))
    landmarks[slot] = (cx / width, cy / height)
    visibility[slot] = int(rng.integers(0, 2))
  buf = io.BytesIO()
  image.save(buf, format="JPEG", quality=95)
  record = {
      "image": buf.getvalue(),
      "image/filename": f"img/fake/img_{index:08d}.jpg".encode(),
      "bbox": np.array(
          [y0 / height, x0 / width, (y0 + bh) / height, (x0 + bw) / width], np.float32
      ),
      "landmarks": landmarks,
      "landmark_visibility": visibility,
      "clothes_type": np.int64(clothes_type),
      "category": np.int64(index % 5),
      "attributes": rng.choice(np.array([-1, 0, 1], np.int8), size=num_attributes),
      "item_id": f"id_{index // images_per_item:08d}".encode(),
  }
  if fields is not None:
    record = {k: v for k, v in record.items() if k in fields}
  return record


def make_source(n, *, seed=0, **kwargs):
  rng = np.random.default_rng(seed)
  return [make_record(i, rng, **kwargs) for i in range(n)]


def make_config(**overrides):
  config = ml_collections.ConfigDict()
  config.seed = 7
  config.dataset = ml_collections.ConfigDict(
      dict(
          name="deepfashion/category_attribute",
          data_dir=None,
          train_split="train",
          eval_split="validation",
          cache_dir=None,
      )
  )
  config.image_size = 48
  config.batch_size = 4
  config.eval_batch_size = 4
  config.input = ml_collections.ConfigDict(
      dict(
          crop_margin=0.1,
          crop_jitter=0.1,
          flip=True,
          color_jitter=0.0,
          worker_count=0,
          read_threads=2,
          prefetch_buffer_size=2,
          shuffle=True,
          sampler="random",
          retrieval_p=3,
          retrieval_k=2,
      )
  )
  config.model = ml_collections.ConfigDict(dict(num_attributes=6))
  config.update_from_flattened_dict(overrides)
  return config
