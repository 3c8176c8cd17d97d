"""Landmark NE in the literature's frame, through the eval path (crop with a margin, uncrop).

The reference below is written from the released code, in pixels, independently of
fashionnet_jax: Liu & Lu's Deep-Fashion-Analysis-ECCV2018 (scripts/create_info.py:
visibility and unused slots; src/dataset.py: BBoxCrop, Rescale((224, 224)),
CheckLandmarks, LandmarksNormalize; src/utils.py: Evaluator.landmark_count/evaluate),
which GLE_FLD (dataset.py, utils.py) repeats.
"""

import io

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

import input_pipeline_fakes as fakes
from fashionnet_jax.data import pipeline, preprocess
from fashionnet_jax.evaluation import loop
from fashionnet_jax.evaluation import metrics as evaluate

# Released images (W, H) and ground-truth bboxes (x_1, y_1, x_2, y_2) in pixels: none
# fills its image, so the bbox frame and the image frame differ.
SIZES = [(300, 200), (200, 300), (512, 384), (256, 256)]
BBOXES = [(40, 30, 180, 170), (20, 60, 150, 290), (100, 50, 400, 350), (64, 32, 192, 224)]
SLOTS_BY_TYPE = {1: (0, 1, 2, 3, 6, 7), 2: (4, 5, 6, 7), 3: tuple(range(8))}


def _jpeg(width, height):
  buffer = io.BytesIO()
  Image.new("RGB", (width, height), (120, 80, 40)).save(buffer, format="JPEG")
  return buffer.getvalue()


def _dataset(seed=0):
  """Per image: clothes type, 8-slot pixel landmarks (ints) and visibility codes (3 unused)."""
  rng = np.random.default_rng(seed)
  examples = []
  for i, ((w, h), (x1, y1, x2, y2)) in enumerate(zip(SIZES, BBOXES)):
    clothes_type = (1, 2, 3, 3)[i]
    xy = np.zeros((8, 2), np.int64)
    vis = np.full(8, 3)
    for slot in SLOTS_BY_TYPE[clothes_type]:
      xy[slot] = rng.integers([x1 + 2, y1 + 2], [x2 - 2, y2 - 2])
      vis[slot] = rng.choice([0, 0, 0, 1, 2])
    # Visible but outside the bbox (inside the margin of a 0.25 crop): CheckLandmarks drops it.
    first = SLOTS_BY_TYPE[clothes_type][0]
    xy[first], vis[first] = (x1 - 5, y1 + 10), 0
    # Predictions in pixels, some far off (the error a network makes is its own).
    pred = xy + rng.normal(scale=(8, 6), size=(8, 2))
    examples.append(
        dict(size=(w, h), bbox=(x1, y1, x2, y2), type=clothes_type, xy=xy, vis=vis, pred=pred)
    )
  return examples


def _released_ne(examples):
  """Port of the released evaluation: per landmark Σ dist / Σ vis, then their mean."""
  dist_all, count_all = np.zeros(8), np.zeros(8)
  detected = {t: [0, 0] for t in evaluate.PIXEL_THRESHOLDS}
  for e in examples:
    # create_info.py: vis 1 only for code 0; slots the type lacks stay (0, 0) with vis 1.
    landmark_vis = np.ones(8, np.int64)
    landmark_pos = np.zeros((8, 2))
    for slot in SLOTS_BY_TYPE[e["type"]]:
      landmark_pos[slot] = e["xy"][slot]
      landmark_vis[slot] = 1 if e["vis"][slot] == 0 else 0
    x1, y1, x2, y2 = e["bbox"]
    new_w, new_h = x2 - x1, y2 - y1
    # BBoxCrop, then Rescale((224, 224)).
    landmark_pos = (landmark_pos - [x1, y1]) * [224 / new_w, 224 / new_h]
    # CheckLandmarks on the 224x224 image.
    for i in range(8):
      if not (0 <= landmark_pos[i, 0] < 224 and 0 <= landmark_pos[i, 1] < 224):
        landmark_vis[i] = 0
    gt = landmark_pos / [224.0, 224.0]  # LandmarksNormalize
    out = (e["pred"] - [x1, y1]) / [new_w, new_h]  # the network's output in that frame
    mask = np.stack([landmark_vis, landmark_vis], 1).astype(float)
    dist = np.sqrt(np.sum(np.square(mask * out - mask * gt), axis=1))
    dist_all += dist
    count_all += landmark_vis
    for t in detected:
      detected[t][0] += int(np.sum((dist * 224 <= t) & (landmark_vis == 1)))
      detected[t][1] += int(landmark_vis.sum())
  per_landmark = dist_all / np.where(count_all > 0, count_all, np.nan)
  return per_landmark, np.nanmean(per_landmark), {t: a / b for t, (a, b) in detected.items()}


def _image_frame_ne(examples, margin):
  """The old frame: x / image width, y / image height, visible landmarks inside the crop."""
  dist_all, count_all = np.zeros(8), np.zeros(8)
  for e in examples:
    (w, h), (x1, y1, x2, y2) = e["size"], e["bbox"]
    bw, bh = x2 - x1, y2 - y1
    cx0, cy0 = max(x1 - margin * bw, 0), max(y1 - margin * bh, 0)
    cx1, cy1 = min(x2 + margin * bw, w), min(y2 + margin * bh, h)
    for i in range(8):
      x, y = e["xy"][i]
      if e["vis"][i] == 0 and cx0 <= x <= cx1 and cy0 <= y <= cy1:
        dist_all[i] += np.hypot((e["pred"][i, 0] - x) / w, (e["pred"][i, 1] - y) / h)
        count_all[i] += 1
  per_landmark = dist_all / np.where(count_all > 0, count_all, np.nan)
  return np.nanmean(per_landmark)


def _collected_arrays(examples, margin):
  """What evaluation.loop.collect gathers: the real eval preprocessing of TFDS-like records."""
  records = []
  for e in examples:
    (w, h), (x1, y1, x2, y2) = e["size"], e["bbox"]
    records.append(
        {
            "image": _jpeg(w, h),
            "bbox": np.array([y1 / h, x1 / w, y2 / h, x2 / w], np.float32),  # tfds BBox
            "landmarks": (e["xy"] / [w, h]).astype(np.float32),
            "landmark_visibility": e["vis"].astype(np.int64),
        }
    )
  load = preprocess.LoadEvalExample(
      records,
      preprocess.Preprocess(image_size=16, num_attributes=4, train=False, crop_margin=margin),
  )
  batch = preprocess.collate([load(i) for i in range(len(records))] + [load(-1)], normalize=False)
  keep = batch["mask"]
  arrays = {k: batch[k][keep] for k in ("landmarks", "landmark_visibility", "crop", "bbox")}
  # The network's predictions live in the crop's frame, in continuous coordinates:
  # pixel index p has its centre at p + 0.5 (data/transforms.py's convention).
  crop = arrays["crop"]
  pred = np.stack([(e["pred"] + 0.5) / e["size"] for e in examples])
  arrays["pred_landmarks"] = (
      (pred - crop[:, None, :2]) / (crop[:, None, 2:] - crop[:, None, :2])
  ).astype(np.float32)
  return arrays


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.25])
def test_landmark_ne_is_the_released_bbox_frame_ne(margin):
  examples = _dataset()
  per_landmark, mean, detected = _released_ne(examples)
  metrics = loop.landmark_scores(_collected_arrays(examples, margin))
  # The same numbers whatever margin the input crop uses.
  assert metrics["landmark_ne"] == pytest.approx(mean, rel=1e-5)
  for name, value in zip(evaluate.LANDMARK_NAMES, per_landmark):
    assert metrics[f"landmark_ne_{name}"] == pytest.approx(value, rel=1e-5, nan_ok=True), name
  for t, value in detected.items():
    assert metrics[f"landmark_detected_bbox224_{t}px"] == pytest.approx(value), t
  # The image frame is kept under its own name, and is smaller: the boxes do not fill the photos.
  image_ne = _image_frame_ne(examples, margin)
  assert metrics["landmark_ne_image"] == pytest.approx(image_ne, rel=1e-5)
  assert image_ne < 0.8 * mean


def test_landmark_keys_name_their_frame():
  metrics = loop.landmark_scores(_collected_arrays(_dataset(1), 0.1))
  assert set(metrics) == {
      "landmark_ne",
      "landmark_ne_image",
      *(f"landmark_ne_{n}" for n in evaluate.LANDMARK_NAMES),
      *(f"landmark_detected_bbox224_{t}px" for t in (5, 10, 15, 20, 25, 30, 35, 40)),
  }


def test_eval_examples_carry_the_ground_truth_bbox():
  examples = _dataset()
  arrays = _collected_arrays(examples, 0.25)
  want = [(x1 / w, y1 / h, x2 / w, y2 / h) for (w, h), (x1, y1, x2, y2) in zip(SIZES, BBOXES)]
  np.testing.assert_allclose(arrays["bbox"], want, rtol=1e-6)
  assert (arrays["crop"][:, :2] <= arrays["bbox"][:, :2]).all()  # the margin widens the crop


def test_empty_bbox_is_one_clear_error():
  zeros = np.zeros((1, 8, 2))
  with pytest.raises(ValueError, match="example 0 has an empty bbox"):
    evaluate.landmarks_in_bbox_frame(zeros, zeros, np.zeros((1, 8)), [[0.2, 0.2, 0.2, 0.5]])


def test_protocol_names_the_crop_and_the_frame():
  config = ml_collections.ConfigDict({"image_size": 224, "input": {"crop_margin": 0.1}})
  protocol = loop.eval_protocol(config)
  assert protocol["crop_margin"] == 0.1 and protocol["image_size"] == 224
  assert "ground-truth bbox" in protocol["ne_frame"] and "224x224" in protocol["detected_frame"]


def test_compute_metrics_scores_in_the_bbox_frame(monkeypatch):
  """The eval loop end to end (pipeline, collect, uncrop): a network that always answers
  the centre of a zero-margin crop, i.e. of the bbox, scored against the records' bboxes."""
  records = fakes.make_source(6)
  monkeypatch.setattr(pipeline, "open_source", lambda config, split: records)
  config = fakes.make_config(**{"dataset.name": "deepfashion/landmarks", "input.crop_margin": 0.0})
  mesh = jax.make_mesh((1,), ("data",))

  def predict(images):
    n = images.shape[0]
    return {
        "landmarks": np.full((n, 8, 2), 0.5, np.float32),
        "embedding": np.zeros((n, 4), np.float32),
    }

  metrics = loop.compute_metrics(config, predict, mesh, "test")
  dist = [[] for _ in range(8)]
  for r in records:
    ymin, xmin, ymax, xmax = r["bbox"]
    # The records hold pixel index / size; the pixel's centre is half a pixel on.
    width, height = Image.open(io.BytesIO(r["image"])).size
    for i in np.flatnonzero(r["landmark_visibility"] == 0):
      u = (r["landmarks"][i, 0] + 0.5 / width - xmin) / (xmax - xmin)
      v = (r["landmarks"][i, 1] + 0.5 / height - ymin) / (ymax - ymin)
      dist[i].append(np.hypot(u - 0.5, v - 0.5))
  want = np.mean([np.mean(d) for d in dist if d])
  assert metrics["landmark_ne"] == pytest.approx(want, rel=1e-4)
  assert metrics["landmark_ne_image"] < metrics["landmark_ne"]


def test_a_model_without_the_landmark_branch_gets_no_landmark_scores(monkeypatch):
  """The ablation's constant-zero landmarks are not scored (they once read NE 0.876)."""
  records = fakes.make_source(6)
  monkeypatch.setattr(pipeline, "open_source", lambda config, split: records)
  config = fakes.make_config(**{"dataset.name": "deepfashion/landmarks"})
  config.model.use_landmark_branch = False
  mesh = jax.make_mesh((1,), ("data",))

  def predict(images):
    n = images.shape[0]
    return {"landmarks": np.zeros((n, 8, 2), np.float32), "embedding": np.zeros((n, 4), np.float32)}

  metrics = loop.compute_metrics(config, predict, mesh, "test")
  assert not [k for k in metrics if k.startswith("landmark_")]
  assert metrics["num_examples"] == 6
