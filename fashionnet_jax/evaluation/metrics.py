"""DeepFashion paper-protocol metrics (Liu et al., CVPR 2016).

Every metric takes whole-split arrays (NumPy or jax) and returns fractions in
[0, 1]; `evaluation/report.py` prints them in the paper's units. Protocols
(docs/deepfashion.md, "Evaluation protocols"):
- category: top-k accuracy;
- attributes: top-k recall = sum of each image's positives inside its top k /
  sum of positives, overall and per type. Per type in two protocols that are
  not comparable: the paper's (the 1,000 scores ranked once; a type's recall
  counts that type's positives inside the global top k: keys
  `attribute_top{k}_recall_<type>`) and the later papers' (AFGN; Liu & Lu,
  ECCV 2018 workshop: only the type's attributes ranked, keys
  `..._<type>_within_type`);
- retrieval: top-k accuracy = a query is a hit when an image of the same item
  is among its k nearest gallery images (cosine similarity);
- landmarks: normalised error (NE) in the ground-truth bbox's frame over
  visible landmarks only, and the detected percentage at pixel thresholds in
  that bbox resized to 224x224 (`landmarks_in_bbox_frame`, `landmark_metrics`).
These are not mmfashion's metrics (best-50 attribute recall, fraction of the
relevant images retrieved, invisible landmarks counted as zero error).

Ties in every ranking follow a stable descending sort: among equal scores the
lower index (class, attribute or gallery row) ranks first. `MetricAccumulator`
gathers batches; the `*_metrics` helpers return the flat keys `report.py` reads.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from fashionnet_jax.evaluation import search
from fashionnet_jax.schema import ATTRIBUTE_TYPE_NAMES, LANDMARK_NAMES, TRUNCATED

RETRIEVAL_KS = (1, 5, 10, 20, 30, 40, 50)
# Detected percentage: pixel thresholds in the ground-truth bbox resized to
# BBOX_FRAME_SIZE² pixels, the network input of the released code that reports NE
# (BBOXRESIZE; see landmarks_in_bbox_frame), so 1 px there is 1/224 of NE's unit.
PIXEL_THRESHOLDS = (5, 10, 15, 20, 25, 30, 35, 40)
BBOX_FRAME_SIZE = 224


def _array(x, name, ndim, dtype=None):
  x = np.asarray(x, dtype)
  if x.ndim != ndim:
    raise ValueError(f"{name}: expected {ndim} dimensions, got shape {x.shape}")
  return x


def _check_k(k, name):
  if int(k) != k or k < 1:
    raise ValueError(f"{name}: k must be a positive integer, got {k!r}")
  return int(k)


def category_topk_accuracy(logits, labels, k: int) -> float:
  """Fraction of images whose label is ranked within the top k.

  The label's rank is the number of classes scoring higher plus the number
  scoring equal with a lower class index (a stable descending sort), so a
  label tied with the k-th score is a hit only if its index puts it inside k.
  k larger than the number of classes counts every image as a hit.
  """
  k = _check_k(k, "category_topk_accuracy")
  logits = _array(logits, "category_topk_accuracy logits", 2, np.float32)
  labels = _array(labels, "category_topk_accuracy labels", 1, np.int64)
  n, num_classes = logits.shape
  if labels.shape[0] != n:
    raise ValueError(f"category_topk_accuracy: {n} logits rows but {labels.shape[0]} labels")
  if n == 0:
    raise ValueError("category_topk_accuracy: no images")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(
        f"category_topk_accuracy: labels must be in 0..{num_classes - 1}, "
        f"got {labels.min()}..{labels.max()}"
    )
  label_score = logits[np.arange(n), labels][:, None]
  lower_index = np.arange(num_classes)[None, :] < labels[:, None]
  rank = (logits > label_score).sum(1) + ((logits == label_score) & lower_index).sum(1)
  return float(np.mean(rank < k))


def _topk_mask(scores, k, chunk=4096):
  """[N, A] bool: True where an attribute is inside its row's stable top k."""
  k = min(k, scores.shape[1])
  inside = np.zeros(scores.shape, bool)
  for start in range(0, scores.shape[0], chunk):
    top = np.argsort(-scores[start : start + chunk], axis=1, kind="stable")[:, :k]
    np.put_along_axis(inside[start : start + chunk], top, True, axis=1)
  return inside


def attribute_topk_recall(
    scores, labels, k: int, attribute_types=None, *, within_type: bool = False
):
  """Top-k attribute recall: Σ positives in each image's top k / Σ positives.

  Args:
    scores: [N, A] attribute scores (logits or probabilities).
    labels: [N, A] as released: 1 positive; 0 (unknown) and -1 are not.
    k: how many of each image's best-scored attributes count.
    attribute_types: optional [A] ints (1..5 for the 1000 coarse attributes).
    within_type: per type, rank only that type's attributes (the later papers'
      protocol) instead of the paper's single ranking of all A scores.

  Returns:
    The overall recall (float) or, with attribute_types, a dict {type: that
    type's recall, ..., 'all': overall recall}. A type (or a whole set) without
    any positive label gets NaN: its recall is undefined, and NaN keeps it
    visible in reports instead of silently gone.
  """
  k = _check_k(k, "attribute_topk_recall")
  scores = _array(scores, "attribute_topk_recall scores", 2, np.float32)
  labels = _array(labels, "attribute_topk_recall labels", 2)
  if scores.shape != labels.shape:
    raise ValueError(
        f"attribute_topk_recall: scores {scores.shape} and labels " f"{labels.shape} differ"
    )
  positive = labels == 1
  inside = _topk_mask(scores, k)

  def recall(columns):
    chosen = _topk_mask(scores[:, columns], k) if within_type else inside[:, columns]
    total = int(positive[:, columns].sum())
    return int((chosen & positive[:, columns]).sum()) / total if total else float("nan")

  overall = recall(slice(None))
  if attribute_types is None:
    return overall
  types = _array(attribute_types, "attribute_topk_recall attribute_types", 1, np.int64)
  if types.shape[0] != scores.shape[1]:
    raise ValueError(
        f"attribute_topk_recall: {types.shape[0]} attribute_types for "
        f"{scores.shape[1]} attributes"
    )
  result = {int(t): recall(types == t) for t in np.unique(types)}
  result["all"] = overall
  return result


def retrieval_topk_accuracy(
    query_embeddings,
    query_items,
    gallery_embeddings,
    gallery_items,
    ks: Sequence[int] = RETRIEVAL_KS,
    *,
    mesh=None,
    query_chunk: int = 1024,
    gallery_chunk: int | None = None,
) -> dict[int, float]:
  """Top-k retrieval accuracy by cosine similarity, {k: fraction of queries hit}.

  A query is a hit at k when any gallery image of its item (items may have
  several) is among its k nearest gallery images. k above the gallery size
  ranks the whole gallery. A query whose item has no gallery image is always a
  miss (it stays in the denominator). Items may be ints or strings. The search
  runs on the accelerator (`evaluation.search.topk_search`; `mesh` shards the
  gallery).
  """
  ks = [_check_k(k, "retrieval_topk_accuracy") for k in ks]
  q_emb = _array(query_embeddings, "retrieval_topk_accuracy query_embeddings", 2)
  g_emb = _array(gallery_embeddings, "retrieval_topk_accuracy gallery_embeddings", 2)
  q_items = _array(query_items, "retrieval_topk_accuracy query_items", 1)
  g_items = _array(gallery_items, "retrieval_topk_accuracy gallery_items", 1)
  if q_items.shape[0] != q_emb.shape[0] or g_items.shape[0] != g_emb.shape[0]:
    raise ValueError(
        f"retrieval_topk_accuracy: {q_emb.shape[0]} query embeddings vs "
        f"{q_items.shape[0]} query items, {g_emb.shape[0]} gallery "
        f"embeddings vs {g_items.shape[0]} gallery items"
    )
  if q_emb.shape[0] == 0 or g_emb.shape[0] == 0:
    raise ValueError("retrieval_topk_accuracy: empty query set or gallery")
  _, item_codes = np.unique(np.concatenate([q_items, g_items]), return_inverse=True)
  q_codes, g_codes = item_codes[: len(q_items)], item_codes[len(q_items) :]

  depth = min(max(ks), g_emb.shape[0])
  _, neighbours = search.topk_search(
      q_emb, g_emb, depth, mesh=mesh, query_chunk=query_chunk, gallery_chunk=gallery_chunk
  )
  match = g_codes[np.asarray(neighbours)] == q_codes[:, None]
  first_hit = np.where(match.any(1), match.argmax(1), np.inf)
  return {k: float(np.mean(first_hit < k)) for k in ks}


def _landmark_arrays(pred, true, visibility, name):
  pred = _array(pred, f"{name} pred", 3, np.float32)
  true = _array(true, f"{name} true", 3, np.float32)
  visibility = _array(visibility, f"{name} visibility", 2)
  if pred.shape != true.shape or pred.shape[2] != 2 or visibility.shape != pred.shape[:2]:
    raise ValueError(
        f"{name}: need pred/true [N, L, 2] and visibility [N, L], got "
        f"{pred.shape}, {true.shape}, {visibility.shape}"
    )
  return pred, true, visibility == 0


def landmarks_in_bbox_frame(pred, true, visibility, bbox):
  """Landmarks in the ground-truth bbox's frame, where the literature measures NE.

  The released code that reports DeepFashion-C / FLD NE crops each image to its
  ground-truth bbox and resizes it to 224x224 (Liu & Lu, ECCV 2018 workshop,
  github fdjingyuan/Deep-Fashion-Analysis-ECCV2018: src/dataset.py `BBoxCrop`,
  `Rescale((224, 224))` under `BBOXRESIZE` in src/conf/whole.py and lm.py, then
  `LandmarksNormalize` divides by 224; GLE, github suminlee94/GLE_FLD:
  dataset.py, the same transforms). A landmark is thus scored at
  ((x - x1) / (x2 - x1), (y - y1) / (y2 - y1)): x over the bbox's width, y over
  its height, whatever margin our own input crop used. Their `CheckLandmarks`
  drops a landmark whose ground truth falls outside the bbox ([x1, x2) x
  [y1, y2)); here it becomes truncated (2), which NE leaves out.

  Args:
    pred, true: [N, L, 2] (x, y) in one frame of the released image (normalised
      by its width and height, or pixels; only differences and ratios matter).
    visibility: [N, L] codes (0 visible, 1 occluded, 2 truncated, 3 unused).
    bbox: [N, 4] ground-truth (x1, y1, x2, y2) in the same frame.

  Returns:
    (pred, true, visibility) in the bbox's frame (float32, int).
  """
  pred, true, _ = _landmark_arrays(pred, true, visibility, "landmarks_in_bbox_frame")
  visibility = np.array(visibility)
  bbox = _array(bbox, "landmarks_in_bbox_frame bbox", 2, np.float32)
  if bbox.shape != (pred.shape[0], 4):
    raise ValueError(
        f"landmarks_in_bbox_frame: bbox must be [{pred.shape[0]}, 4] "
        f"(x1, y1, x2, y2), got {bbox.shape}"
    )
  origin, size = bbox[:, None, :2], bbox[:, None, 2:] - bbox[:, None, :2]
  flat = np.flatnonzero((size <= 0).any(-1))
  if flat.size:
    raise ValueError(
        f"landmarks_in_bbox_frame: example {flat[0]} has an empty bbox " f"{bbox[flat[0]].tolist()}"
    )
  pred, true = (pred - origin) / size, (true - origin) / size
  # Half-open like CheckLandmarks; the slack absorbs float rounding, far below a pixel.
  slack = 1e-5
  outside = ((true < -slack) | (true >= 1.0 - slack)).any(-1)
  visibility[(visibility == 0) & outside] = TRUNCATED
  return pred, true, visibility


def landmark_normalized_error(pred, true, visibility):
  """Normalised error: mean L2 distance in the given normalised coordinates.

  The frame is the caller's: `landmarks_in_bbox_frame` gives the literature's
  (x / bbox width, y / bbox height). Only visible landmarks (visibility 0)
  count; occluded (1), truncated (2) and unused slots (3) are left out, not
  scored as zero error. The averaging is the released code's (`Evaluator` /
  `LandmarkEvaluator.evaluate` in Deep-Fashion-Analysis-ECCV2018 src/utils.py,
  `Evaluator.evaluate` in GLE_FLD utils.py): per landmark Σ distance / Σ
  visible over the whole split, then the plain mean over landmarks.

  Returns:
    (per_landmark [L], mean): per landmark Σ distance / Σ visible (NaN for a
    landmark never visible), and their mean over the landmarks that have any
    visible instance (NaN when none has; the released code's mean would be NaN
    as soon as one landmark is never visible).
  """
  pred, true, visible = _landmark_arrays(pred, true, visibility, "landmark_normalized_error")
  distance = np.linalg.norm(pred - true, axis=-1)
  count = visible.sum(0)
  total = np.where(visible, distance, 0.0).sum(0)
  per_landmark = np.full(count.shape, np.nan)
  np.divide(total, count, out=per_landmark, where=count > 0)
  mean = float(per_landmark[count > 0].mean()) if (count > 0).any() else float("nan")
  return per_landmark, mean


def landmark_detected_percentage(pred, true, visibility, thresholds, image_sizes=None):
  """Fraction of visible landmarks within each distance threshold (<=).

  With image_sizes ([N, 2] as (width, height) in pixels) distances and
  thresholds are in pixels; without, in normalised coordinates. Returns a
  float array [T] in [0, 1] (NaN if no landmark is visible).
  """
  pred, true, visible = _landmark_arrays(pred, true, visibility, "landmark_detected_percentage")
  offset = pred - true
  if image_sizes is not None:
    image_sizes = _array(image_sizes, "landmark_detected_percentage image_sizes", 2, np.float32)
    if image_sizes.shape != (pred.shape[0], 2):
      raise ValueError(
          f"landmark_detected_percentage: image_sizes must be "
          f"[{pred.shape[0]}, 2] (width, height), got {image_sizes.shape}"
      )
    offset = offset * image_sizes[:, None, :]
  distance = np.linalg.norm(offset, axis=-1)[visible]
  thresholds = np.asarray(thresholds, np.float32).reshape(-1)
  if distance.size == 0:
    return np.full(thresholds.shape, np.nan)
  return (distance[None, :] <= thresholds[:, None]).mean(1)


# Flat keys for report.py / metric writers.


def category_metrics(logits, labels, ks=(1, 3, 5)) -> dict[str, float]:
  return {f"category_top{k}": category_topk_accuracy(logits, labels, k) for k in ks}


def attribute_metrics(
    scores,
    labels,
    attribute_types=None,
    ks=(3, 5),
    type_names: Mapping[int, str] = ATTRIBUTE_TYPE_NAMES,
):
  """attribute_top{k}_recall; per type attribute_top{k}_recall_<type> (the paper's
  single ranking) and attribute_top{k}_recall_<type>_within_type (ranked within
  the type, as AFGN and the ECCV 2018 workshop code do)."""
  out = {}
  for k in ks:
    if attribute_types is None:
      out[f"attribute_top{k}_recall"] = attribute_topk_recall(scores, labels, k)
      continue
    for within_type, suffix in ((False, ""), (True, "_within_type")):
      r = attribute_topk_recall(scores, labels, k, attribute_types, within_type=within_type)
      out[f"attribute_top{k}_recall"] = r.pop("all")  # the same in both protocols
      for t, value in r.items():
        out[f"attribute_top{k}_recall_{type_names.get(t, f'type{t}')}{suffix}"] = value
  return out


def landmark_metrics(pred, true, visibility, bbox=None, thresholds=PIXEL_THRESHOLDS):
  """NE and detected percentage in the ground-truth bbox's frame.

  Keys: landmark_ne (mean over landmarks), landmark_ne_<name> (per landmark),
  landmark_detected_bbox224_<t>px (visible landmarks within t pixels in the
  bbox resized to 224x224). pred/true/bbox as in `landmarks_in_bbox_frame`;
  without bbox, pred and true are taken to be in the bbox's frame already.
  """
  if bbox is not None:
    pred, true, visibility = landmarks_in_bbox_frame(pred, true, visibility, bbox)
  per_landmark, mean = landmark_normalized_error(pred, true, visibility)
  names = (
      LANDMARK_NAMES
      if len(per_landmark) == len(LANDMARK_NAMES)
      else [f"landmark{i}" for i in range(len(per_landmark))]
  )
  out = {"landmark_ne": mean}
  out.update({f"landmark_ne_{n}": float(v) for n, v in zip(names, per_landmark)})
  frame = np.full((len(pred), 2), BBOX_FRAME_SIZE)
  detected = landmark_detected_percentage(pred, true, visibility, thresholds, frame)
  out.update(
      {
          f"landmark_detected_bbox{BBOX_FRAME_SIZE}_{t:g}px": float(d)
          for t, d in zip(thresholds, detected)
      }
  )
  return out


def retrieval_metrics(
    query_embeddings,
    query_items,
    gallery_embeddings,
    gallery_items,
    ks=RETRIEVAL_KS,
    **search_kwargs,
):
  accuracy = retrieval_topk_accuracy(
      query_embeddings, query_items, gallery_embeddings, gallery_items, ks, **search_kwargs
  )
  return {f"retrieval_top{k}": v for k, v in accuracy.items()}


class MetricAccumulator:
  """Collects per-batch arrays on the host; `arrays()` concatenates them.

  `update(mask=m, logits=..., labels=...)` keeps only rows where m is true,
  which drops the padding of a final partial batch.
  """

  def __init__(self):
    self._parts: dict[str, list[np.ndarray]] = {}

  def update(self, mask=None, **batch):
    keep = None if mask is None else np.asarray(mask).astype(bool)
    for name, value in batch.items():
      value = np.asarray(value)
      if keep is not None:
        if value.shape[:1] != keep.shape:
          raise ValueError(
              f"MetricAccumulator.update: '{name}' has {value.shape[:1]} "
              f"rows but the mask has {keep.shape}"
          )
        value = value[keep]
      self._parts.setdefault(name, []).append(value)

  def arrays(self) -> dict[str, np.ndarray]:
    return {name: np.concatenate(parts) for name, parts in self._parts.items()}
