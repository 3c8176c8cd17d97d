"""The evaluation loop: run a FashionNet over a split, score it with the paper's protocols.

`category_attribute` (and `category_attribute_fine`): category top-k and attribute
top-k recall (overall and per type); every dataset with landmarks: normalised error per
landmark in the ground-truth bbox's frame, as the literature reports it
(`landmark_scores`); `inshop`: the query split against the gallery split;
`consumer2shop`: the split's consumer images against its shop images. Retrieval runs on
the accelerator (`evaluation.search`). Results go to the metric writer and to `workdir/eval/`
(JSON, a Markdown table beside the paper's numbers, PNG plots).

The loop takes what it needs, not a trainer: `predict(images) -> outputs`, a
global batch's eval-mode forward pass (models.functional.make_predict_fn bound
to parameters), and the mesh that batches are laid on. With `config.eval_flip_test`
every batch is also predicted mirrored, and the landmarks averaged (`flip_test`).
"""

from __future__ import annotations

import contextlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fashionnet_jax import console
from fashionnet_jax.data import labels, pipeline, transforms
from fashionnet_jax.data.prepare import dataset_builder_config, trained_on
from fashionnet_jax.evaluation import metrics as metrics_lib
from fashionnet_jax.evaluation import report
from fashionnet_jax.models import heatmap
from fashionnet_jax.schema import ATTRIBUTE_TYPES_BY_CONFIG

_OUTPUT_KEYS = (
    "landmarks",
    "visibility_logits",
    "category_logits",
    "attribute_logits",
    "embedding",
    "embedding_levels",
)
_LABEL_KEYS = (
    "landmarks",
    "landmark_visibility",
    "category",
    "attributes",
    "item",
    "source",
    "crop",
    "bbox",
)


def _gather(x):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


# Input shapes whose evaluation step this process has compiled: "compiling" is said once
# each (a second model of the same shape in one process compiles unannounced).
_COMPILED_SHAPES = set()


def _batches(config, split: str):
  """The split's host batches; on process 0 at a terminal, a progress bar once it has
  taken more than 10 s."""
  batches = pipeline.create_eval_iterator(config, split)
  if jax.process_index() != 0 or not sys.stderr.isatty():
    return batches
  from tqdm import tqdm

  return tqdm(
      batches,
      desc=f"evaluating {split}",
      unit="batch",
      delay=10,
      leave=False,
      file=sys.stderr,
      dynamic_ncols=True,
  )


@jax.jit
def _mirror(images):
  return jnp.flip(images, axis=2)


_flip_average = jax.jit(heatmap.flip_average)


def flip_test(predict):
  """`predict` with the flip test: the batch and its mirror image both predicted, the
  mirror's landmarks (maps with the heatmap head) mirrored back with left/right slots
  swapped and averaged with the batch's own (models/heatmap.flip_average); the category,
  attribute and embedding outputs are the unmirrored batch's."""

  def predict_both(images):
    mirrored = jax.device_put(_mirror(images), images.sharding)
    return _flip_average(predict(images), predict(mirrored))

  return predict_both


def collect(config, predict, mesh, split: str) -> dict[str, np.ndarray]:
  """Network outputs and labels for every example of `split`, in order."""
  acc = metrics_lib.MetricAccumulator()
  if config.get("eval_flip_test", False):
    predict = flip_test(predict)
  for host_batch in _batches(config, split):
    batch = pipeline.make_global_batch(host_batch, mesh)
    shape = tuple(batch["image"].shape)
    if shape not in _COMPILED_SHAPES and jax.process_index() == 0:
      console.say("compiling the evaluation step ...")
    _COMPILED_SHAPES.add(shape)
    out = predict(batch["image"])
    rows = {f"pred_{k}": _gather(out[k]) for k in _OUTPUT_KEYS if k in out}
    rows.update({k: _gather(batch[k]) for k in _LABEL_KEYS if k in batch})
    acc.update(mask=_gather(batch["mask"]), **rows)
  return acc.arrays()


def _has_landmarks(arrays) -> bool:
  return "landmark_visibility" in arrays and bool(np.any(arrays["landmark_visibility"] == 0))


def _retrieval(config, query, gallery, mesh) -> dict[str, float]:
  """retrieval_top<k> of the embedding; with HDC's cascade (models/cascade.py) also each
  level's, retrieval_<level>_top<k> ('embedding' is then the levels' concatenation)."""

  def score(q, g, prefix="retrieval"):
    found = metrics_lib.retrieval_metrics(q, query["item"], g, gallery["item"], mesh=mesh)
    return {k.replace("retrieval", prefix, 1): v for k, v in found.items()}

  metrics = score(query["pred_embedding"], gallery["pred_embedding"])
  if "pred_embedding_levels" in query:
    for i, level in enumerate(config.model.cascade_levels):
      metrics.update(
          score(
              query["pred_embedding_levels"][:, i],
              gallery["pred_embedding_levels"][:, i],
              f"retrieval_{level}",
          )
      )
  return metrics


def landmark_scores(arrays) -> dict[str, float]:
  """Landmark metrics of collected arrays (pred_landmarks and landmarks in the crop's frame,
  landmark_visibility, crop, bbox; see data/pipeline.py).

  landmark_ne, landmark_ne_<name> and landmark_detected_bbox224_<t>px in the ground-truth
  bbox's frame (metrics.landmarks_in_bbox_frame: the released DeepFashion-C / FLD NE), and
  landmark_ne_image: the same error over x / image width, y / image height (smaller for the
  same pixel error whenever the garment does not fill the photo; no paper reports it).
  """
  pred = transforms.uncrop_landmarks(arrays["pred_landmarks"], arrays["crop"])
  true = transforms.uncrop_landmarks(arrays["landmarks"], arrays["crop"])
  visibility = arrays["landmark_visibility"]
  metrics = metrics_lib.landmark_metrics(pred, true, visibility, arrays["bbox"])
  metrics["landmark_ne_image"] = metrics_lib.landmark_normalized_error(pred, true, visibility)[1]
  return metrics


def eval_protocol(config) -> dict:
  """Which backbone and landmark head, how test images were cropped, where landmarks are
  scored and whether with the flip test: kept beside the numbers."""
  margin, size = config.input.get("crop_margin", 0.1), config.image_size
  model = config.get("model", {})
  head = model.get("landmark_head", "regression")
  if not model.get("use_landmark_branch", True):
    head = "none (no landmark branch)"
  elif head == "heatmap":
    cells = heatmap.map_size(size)
    head = f"heatmap ({cells}x{cells} maps, argmax + log-parabola sub-cell decoding)"
  return {
      "backbone": model.get("backbone", "vgg16"),
      "landmark_head": head,
      "flip_test": bool(config.get("eval_flip_test", False)),
      "crop": f"ground-truth bbox + {margin:g} of its width / height per side, clipped to "
      f"the image, resized to {size}x{size}",
      "crop_margin": margin,
      "image_size": size,
      "ne_frame": "ground-truth bbox: x / bbox width, y / bbox height, visible landmarks "
      "inside the bbox (landmark_ne_image: x / image width, y / image height)",
      "detected_frame": f"ground-truth bbox resized to {metrics_lib.BBOX_FRAME_SIZE}x"
      f"{metrics_lib.BBOX_FRAME_SIZE} pixels",
  }


def _rows(arrays, keep):
  return {k: v[keep] for k, v in arrays.items()}


def compute_metrics(config, predict, mesh, split=None) -> dict[str, float]:
  """The paper-protocol metrics of `predict` on the config's eval split (In-shop: query/gallery)."""
  builder_config = dataset_builder_config(config)
  split = split or config.dataset.eval_split
  metrics: dict[str, float] = {}
  if builder_config == "inshop":
    query = collect(config, predict, mesh, "query")
    gallery = collect(config, predict, mesh, "gallery")
    metrics.update(_retrieval(config, query, gallery, mesh))
    arrays = query
  else:
    arrays = collect(config, predict, mesh, split)
    if builder_config == "consumer2shop":
      consumer = arrays["source"] == 1
      metrics.update(_retrieval(config, _rows(arrays, consumer), _rows(arrays, ~consumer), mesh))
  if builder_config in ATTRIBUTE_TYPES_BY_CONFIG:  # coarse (5 types) or Anno_fine (6)
    metrics.update(metrics_lib.category_metrics(arrays["pred_category_logits"], arrays["category"]))
    types = labels.dataset_labels(config)["attribute_types"] or None
    metrics.update(
        metrics_lib.attribute_metrics(
            arrays["pred_attribute_logits"],
            arrays["attributes"],
            attribute_types=types,
            type_names=ATTRIBUTE_TYPES_BY_CONFIG[builder_config],
        )
    )
  # A model without the landmark branch answers constant zeros: nothing to score.
  if _has_landmarks(arrays) and config.model.get("use_landmark_branch", True):
    metrics.update(landmark_scores(arrays))
  metrics["num_examples"] = float(len(arrays["pred_embedding"]))
  return metrics


def _split_name(builder_config: str, split: str) -> str:
  return "query vs gallery" if builder_config == "inshop" else f"the {split} split"


def evaluate_and_report(
    config,
    predict,
    mesh,
    workdir,
    writer,
    step: int,
    split=None,
    folder: str = "eval",
    extra: dict | None = None,
) -> dict[str, float]:
  """compute_metrics on `split` (default: the config's eval split), written to `writer`
  (as `<folder>/<metric>`) and (process 0) to workdir/<folder>/<step>.*, the JSON with the
  test-time crop protocol (`eval_protocol`) under "protocol"."""
  builder_config = dataset_builder_config(config)
  if builder_config == "inshop":
    split = "query"
  split = split or config.dataset.eval_split
  said = (
      console.phase(f"evaluating step {step} on {_split_name(builder_config, split)}")
      if jax.process_index() == 0
      else contextlib.nullcontext()
  )
  with said:
    metrics = compute_metrics(config, predict, mesh, split)
  prefix = folder.replace("/", "_")
  writer.write_scalars(step, {f"{prefix}/{k}": v for k, v in metrics.items() if np.isfinite(v)})
  if jax.process_index() == 0:
    report.write_report(
        metrics,
        workdir,
        step=step,
        split=split,
        dataset=builder_config,
        folder=folder,
        extra={"protocol": eval_protocol(config), **(extra or {})},
        trained_on=trained_on(config),
    )
  logging.info(
      "eval step %d: %s", step, ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
  )
  return metrics
