"""A prediction as the JSON record that `predict` prints (and serving returns).

`LabelSpace` names the network's outputs from a run's labels.json (categories,
attributes with their types, each category's clothes type, what the model was
trained on: every record's `trained_on`); `describe` turns
one image's outputs into the record; `predict_files` runs a Predictor over
image files in batches, an unreadable file costing only its own record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fashionnet_jax import schema
from fashionnet_jax.data import transforms
from fashionnet_jax.data.prepare import SYNTHETIC, trained_on
from fashionnet_jax.inference.images import ImageError, landmarks_to_pixels, load_image


def _softmax(x, axis=-1):
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


class LabelSpace:
  """Names and types of the network's outputs, from the run's labels.json.

  A run on a benchmark without category names (In-shop) still has the
  contract's 50 DeepFashion categories; attributes without names are not reported.
  """

  def __init__(
      self, labels: dict, num_categories: int, num_attributes: int, trained_on: str | None = None
  ):
    # What the model was trained on (the run's labels.json records it): every record says it.
    self.trained_on = labels.get("trained_on") or trained_on
    categories = list(labels.get("categories") or [])
    if not categories and num_categories == len(schema.CATEGORIES):
      categories = [name for name, _ in schema.CATEGORIES]
    if len(categories) != num_categories:
      categories = [f"category_{i + 1}" for i in range(num_categories)]
    self.categories = categories
    # The category -> clothes type map of list_category_cloth.txt (1 upper, 2 lower, 3 full).
    self.category_types = [schema.CATEGORY_TYPE.get(name) for name in categories]
    names = list(labels.get("attribute_names") or [])
    types = list(labels.get("attribute_types") or [])
    if len(names) != num_attributes:
      names, types = [], []
    type_names = (
        schema.FINE_ATTRIBUTE_TYPE_NAMES
        if num_attributes == schema.NUM_FINE_ATTRIBUTES
        else schema.ATTRIBUTE_TYPE_NAMES
    )
    self.attribute_names = names
    self.attribute_types = [type_names.get(int(t), str(t)) for t in types] or [None] * len(names)

  @classmethod
  def of(cls, predictor) -> LabelSpace:
    """The label space of a Predictor's run; a run without the record of what it was trained
    on (older runs) gets it from its config's data dir (data.prepare.trained_on)."""
    config = predictor.config
    return cls(
        predictor.labels,
        int(config.model.num_categories),
        int(config.model.num_attributes),
        trained_on=predictor.labels.get("trained_on") or trained_on(config),
    )

  def note(self) -> str | None:
    """The one line a command prints for a model trained on the synthetic demo data."""
    if self.trained_on != SYNTHETIC:
      return None
    return (
        f"note: this model was trained on {SYNTHETIC}, drawn garments: on real photos "
        "its predictions mean little"
    )

  def clothes_type(self, category_probabilities) -> int | None:
    """1-based clothes type of the most probable category with a known type."""
    for index in np.argsort(-category_probabilities, kind="stable"):
      if self.category_types[index] is not None:
        return int(self.category_types[index])
    return None


def describe(outputs: dict, index: int, loaded, labels: LabelSpace, top_k: int, bbox=None) -> dict:
  """The JSON record of image `index` of a batch of network outputs."""
  category_p = _softmax(outputs["category_logits"][index])
  order = np.argsort(-category_p, kind="stable")[:top_k]
  category = [
      {"name": labels.categories[i], "probability": round(float(category_p[i]), 6)} for i in order
  ]

  attributes = []
  if labels.attribute_names:
    attribute_p = _sigmoid(outputs["attribute_logits"][index])
    for i in np.argsort(-attribute_p, kind="stable")[:top_k]:
      attributes.append(
          {
              "name": labels.attribute_names[i],
              "type": labels.attribute_types[i],
              "probability": round(float(attribute_p[i]), 6),
          }
      )

  clothes_type = labels.clothes_type(category_p)
  applies = set(schema.SLOTS_BY_CLOTHES_TYPE.get(clothes_type, range(schema.NUM_LANDMARKS)))
  # Continuous pixels -> the pixel index the released files write (data/transforms.py).
  xy = transforms.pixel_index(
      landmarks_to_pixels(outputs["landmarks"][index], loaded.crop, loaded.size)
  )
  p_visible = _softmax(outputs["visibility_logits"][index])[:, 0]  # index 0: visible
  landmarks = [
      {
          "name": name,
          "x": round(float(xy[s, 0]), 2),
          "y": round(float(xy[s, 1]), 2),
          "visible": bool(p_visible[s] >= 0.5),
          "probability_visible": round(float(p_visible[s]), 6),
          "applies": s in applies,
      }
      for s, name in enumerate(schema.LANDMARK_NAMES)
  ]
  return {
      "image": loaded.path,
      "category": category,
      "attributes": attributes,
      "clothes_type": schema.CLOTHES_TYPE_NAMES[clothes_type - 1] if clothes_type else None,
      "landmarks": landmarks,
      "bbox": None if bbox is None else [float(v) for v in bbox],
      "crop": loaded.crop_kind,  # inference.images.crop_rule: "bbox" or "whole image"
      "width": loaded.size[0],
      "height": loaded.size[1],
      "trained_on": labels.trained_on,
  }


def predict_files(
    predictor, paths: Sequence[str], bboxes=None, *, top_k: int = 5, batch_size: int = 32
) -> Iterator[tuple[str, dict | None, str | None]]:
  """Yields (path, record, None) or (path, None, error line) per path, in order.

  Images are read and run `batch_size` at a time; an unreadable file costs only
  its own record.
  """
  config = predictor.config
  labels = LabelSpace.of(predictor)
  margin = float(config.input.get("crop_margin", 0.1))
  bboxes = list(bboxes) if bboxes is not None else [None] * len(paths)
  for start in range(0, len(paths), batch_size):
    chunk = list(range(start, min(start + batch_size, len(paths))))
    loaded, errors = {}, {}
    for i in chunk:
      try:
        loaded[i] = load_image(paths[i], predictor.image_size, bboxes[i], margin)
      except ImageError as e:
        errors[i] = str(e)
    good = [i for i in chunk if i in loaded]
    outputs = predictor.predict_uint8(np.stack([loaded[i].image for i in good])) if good else {}
    for i in chunk:
      if i in errors:
        yield paths[i], None, errors[i]
      else:
        yield paths[i], describe(outputs, good.index(i), loaded[i], labels, top_k, bboxes[i]), None
