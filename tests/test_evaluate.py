"""Paper-protocol metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from fashionnet_jax.evaluation import metrics as evaluate

# Category top-k accuracy.


def test_category_topk_hand_computed():
  logits = np.array(
      [
          [0.1, 0.9, 0.0, 0.5],  # label 3: rank 1
          [0.7, 0.2, 0.1, 0.0],  # label 0: rank 0
          [0.3, 0.2, 0.4, 0.1],
      ]
  )  # label 3: rank 3
  labels = np.array([3, 0, 3])
  assert evaluate.category_topk_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
  assert evaluate.category_topk_accuracy(logits, labels, 2) == pytest.approx(2 / 3)
  assert evaluate.category_topk_accuracy(logits, labels, 3) == pytest.approx(2 / 3)
  assert evaluate.category_topk_accuracy(logits, labels, 4) == 1.0
  # k beyond the number of classes: everything is a hit.
  assert evaluate.category_topk_accuracy(logits, labels, 50) == 1.0


def test_category_ties_follow_stable_sort():
  # All four classes tie: the stable order is 0, 1, 2, 3.
  logits = np.zeros((4, 4))
  labels = np.array([0, 1, 2, 3])
  assert evaluate.category_topk_accuracy(logits, labels, 1) == 0.25  # only class 0
  assert evaluate.category_topk_accuracy(logits, labels, 3) == 0.75
  # Label 2 ties the 2nd best (class 1): class 1 has the lower index and wins.
  tie = np.array([[0.9, 0.5, 0.5, 0.1]])
  assert evaluate.category_topk_accuracy(tie, [2], 2) == 0.0
  assert evaluate.category_topk_accuracy(tie, [1], 2) == 1.0
  assert evaluate.category_topk_accuracy(tie, [2], 3) == 1.0


def test_category_matches_stable_argsort_on_random_ties():
  rng = np.random.default_rng(0)
  logits = rng.integers(0, 4, size=(200, 10)).astype(np.float32)  # many ties
  labels = rng.integers(0, 10, size=200)
  ranking = np.argsort(-logits, axis=1, kind="stable")
  for k in (1, 3, 5):
    expected = np.mean([labels[i] in ranking[i, :k] for i in range(200)])
    assert evaluate.category_topk_accuracy(logits, labels, k) == pytest.approx(expected)


def test_category_bad_input_is_one_clear_error():
  with pytest.raises(ValueError, match="labels must be in 0..2"):
    evaluate.category_topk_accuracy(np.zeros((2, 3)), [0, 3], 1)
  with pytest.raises(ValueError, match="2 logits rows but 3 labels"):
    evaluate.category_topk_accuracy(np.zeros((2, 3)), [0, 1, 2], 1)
  with pytest.raises(ValueError, match="positive integer"):
    evaluate.category_topk_accuracy(np.zeros((2, 3)), [0, 1], 0)


# Attribute top-k recall.


def test_attribute_recall_hand_computed():
  scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.2], [0.1, 0.2, 0.9, 0.3, 0.8]])
  labels = np.array(
      [[1, -1, 1, 0, 1], [-1, 1, 1, 0, -1]]  # top2 = {0, 1}: 1 of 3 positives
  )  # top2 = {2, 4}: 1 of 2 positives
  assert evaluate.attribute_topk_recall(scores, labels, 2) == pytest.approx(2 / 5)
  # k = 1: image 0 hits attribute 0, image 1 hits attribute 2.
  assert evaluate.attribute_topk_recall(scores, labels, 1) == pytest.approx(2 / 5)
  # k = 3 adds attribute 3 to both, never positive; k = 4 adds 4 and 1.
  assert evaluate.attribute_topk_recall(scores, labels, 3) == pytest.approx(2 / 5)
  assert evaluate.attribute_topk_recall(scores, labels, 4) == pytest.approx(4 / 5)
  # k above the number of attributes: every positive is found.
  assert evaluate.attribute_topk_recall(scores, labels, 100) == 1.0


def test_attribute_recall_per_type_ranks_within_type():
  scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.2]])
  labels = np.array([[1, -1, 1, 0, 1]])
  types = np.array([1, 1, 2, 2, 3])
  # Type 2 = attributes 2, 3 (scores 0.1, 0.7): top-1 within the type is 3, a
  # non-positive; top-1 overall would never reach attribute 2 either.
  r1 = evaluate.attribute_topk_recall(scores, labels, 1, types, within_type=True)
  assert r1 == {1: 1.0, 2: 0.0, 3: 1.0, "all": 1 / 3}
  r2 = evaluate.attribute_topk_recall(scores, labels, 2, types, within_type=True)
  assert r2[2] == 1.0 and r2["all"] == pytest.approx(1 / 3)


def test_attribute_recall_per_type_in_the_papers_single_ranking():
  # The paper ranks all scores once: global order 0 (0.9), 1 (0.8), 3 (0.7), 4, 2.
  scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.2]])
  labels = np.array([[1, -1, 1, 0, 1]])
  types = np.array([1, 1, 2, 2, 3])
  # top-1 = {0}: texture's positive 0 found; fabric's 2 and shape's 4 not.
  assert evaluate.attribute_topk_recall(scores, labels, 1, types) == {
      1: 1.0,
      2: 0.0,
      3: 0.0,
      "all": 1 / 3,
  }
  # top-4 = {0, 1, 3, 4}: shape's 4 now found, fabric's 2 (rank 5) still not.
  assert evaluate.attribute_topk_recall(scores, labels, 4, types) == {
      1: 1.0,
      2: 0.0,
      3: 1.0,
      "all": 2 / 3,
  }


def test_attribute_type_without_positives_is_nan():
  scores = np.array([[0.9, 0.8, 0.1]])
  labels = np.array([[1, 0, -1]])
  r = evaluate.attribute_topk_recall(scores, labels, 1, [1, 2, 2])
  assert r[1] == 1.0 and math.isnan(r[2]) and r["all"] == 1.0
  assert math.isnan(evaluate.attribute_topk_recall(scores, -np.ones((1, 3)), 1))


def test_attribute_ties_follow_stable_sort():
  scores = np.zeros((1, 4))
  assert evaluate.attribute_topk_recall(scores, [[0, 0, 1, 1]], 2) == 0.0
  assert evaluate.attribute_topk_recall(scores, [[1, 0, 0, 1]], 2) == 0.5


def test_attribute_metrics_flat_keys():
  scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.2]])
  labels = np.array([[1, -1, 1, 0, 1]])
  m = evaluate.attribute_metrics(scores, labels, [1, 1, 2, 2, 3], ks=(1,))
  assert m == {
      "attribute_top1_recall": pytest.approx(1 / 3),
      # The paper's protocol: one ranking of all attributes.
      "attribute_top1_recall_texture": 1.0,
      "attribute_top1_recall_fabric": 0.0,
      "attribute_top1_recall_shape": 0.0,
      # The later papers': ranked within each type.
      "attribute_top1_recall_texture_within_type": 1.0,
      "attribute_top1_recall_fabric_within_type": 0.0,
      "attribute_top1_recall_shape_within_type": 1.0,
  }


# Retrieval top-k accuracy.


def test_retrieval_hand_computed_with_several_gallery_images_per_item():
  gallery = np.array([[1, 0], [0, 1], [-1, 0], [0.6, 0.8]], np.float32)
  gallery_items = np.array(["a", "b", "b", "c"])
  # Query 0 (item b) along x: order 0 (a), 3 (c), 1 (b), 2 (b): first hit at rank 3.
  # Query 1 (item c) along y: order 1 (b), 3 (c), ...: first hit at rank 2.
  # Query 2 (item d) has no gallery image: never a hit, still counted.
  # Query 3 (item b) along -x: gallery row 2 (b) first: hit at rank 1.
  queries = np.array([[2, 0], [0, 3], [1, 1], [-1, 0.1]], np.float32)
  query_items = np.array(["b", "c", "d", "b"])
  acc = evaluate.retrieval_topk_accuracy(
      queries, query_items, gallery, gallery_items, ks=(1, 2, 3, 4, 50)
  )
  assert acc == {1: 0.25, 2: 0.5, 3: 0.75, 4: 0.75, 50: 0.75}


def test_retrieval_uses_cosine_not_distance():
  # Gallery row 1 is far in L2 but identical in direction.
  gallery = np.array([[1.0, 0.1], [100.0, 0.0]], np.float32)
  acc = evaluate.retrieval_topk_accuracy([[3.0, 0.0]], [7], gallery, [1, 7], ks=(1,))
  assert acc == {1: 1.0}


def test_retrieval_matches_brute_force_on_random_data():
  rng = np.random.default_rng(1)
  gallery = rng.normal(size=(60, 8)).astype(np.float32)
  g_items = rng.integers(0, 20, size=60)
  queries = rng.normal(size=(45, 8)).astype(np.float32)
  q_items = rng.integers(0, 20, size=45)
  g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  order = np.argsort(-(queries @ g.T), axis=1)
  acc = evaluate.retrieval_topk_accuracy(
      queries, q_items, gallery, g_items, ks=(1, 5, 20), query_chunk=7, gallery_chunk=11
  )
  for k in (1, 5, 20):
    expected = np.mean([(g_items[order[i, :k]] == q_items[i]).any() for i in range(45)])
    assert acc[k] == pytest.approx(expected)


def test_retrieval_with_gallery_sharded_over_8_devices():
  import jax

  rng = np.random.default_rng(2)
  gallery, queries = rng.normal(size=(50, 8)), rng.normal(size=(13, 8))
  g_items, q_items = rng.integers(0, 9, size=50), rng.integers(0, 9, size=13)
  args = (queries, q_items, gallery, g_items, (1, 5, 10))
  sharded = evaluate.retrieval_topk_accuracy(
      *args, mesh=jax.make_mesh((8,), ("data",)), query_chunk=4, gallery_chunk=3
  )
  assert sharded == evaluate.retrieval_topk_accuracy(*args)


def test_retrieval_metrics_keys():
  m = evaluate.retrieval_metrics([[1.0, 0.0]], [0], [[1.0, 0.0]], [0], ks=(1, 5))
  assert m == {"retrieval_top1": 1.0, "retrieval_top5": 1.0}


# Landmarks.


def _landmarks():
  true = np.zeros((2, 8, 2), np.float32)
  pred = np.zeros((2, 8, 2), np.float32)
  pred[0, 0] = (0.3, 0.4)  # distance 0.5, visible
  pred[1, 0] = (0.0, 0.1)  # distance 0.1, visible
  pred[0, 1] = (0.6, 0.8)  # distance 1.0, occluded: not counted
  pred[1, 1] = (0.06, 0.08)  # distance 0.1, visible
  visibility = np.full((2, 8), 3)  # slots unused ...
  visibility[:, 0] = 0
  visibility[0, 1], visibility[1, 1] = 1, 0
  visibility[:, 2] = (0, 2)  # slot 2: exact (0) when visible
  return pred, true, visibility


def test_landmark_normalized_error_visible_only():
  pred, true, visibility = _landmarks()
  per_landmark, mean = evaluate.landmark_normalized_error(pred, true, visibility)
  np.testing.assert_allclose(per_landmark[:3], [0.3, 0.1, 0.0], atol=1e-6)
  assert np.isnan(per_landmark[3:]).all()  # never visible
  assert mean == pytest.approx((0.3 + 0.1 + 0.0) / 3)


def test_landmark_normalized_error_nothing_visible():
  per_landmark, mean = evaluate.landmark_normalized_error(
      np.zeros((1, 8, 2)), np.ones((1, 8, 2)), np.ones((1, 8))
  )
  assert np.isnan(per_landmark).all() and math.isnan(mean)


def test_landmark_detected_percentage_normalised_and_pixels():
  pred, true, visibility = _landmarks()
  # Visible distances: 0.5, 0.1, 0.1, 0.0.
  np.testing.assert_allclose(
      evaluate.landmark_detected_percentage(pred, true, visibility, [0.0, 0.1, 0.5]),
      [0.25, 0.75, 1.0],
      atol=1e-6,
  )
  # Image 0 is 100x200 px: (0.3, 0.4) -> (30, 80) px = 85.44 px; image 1 is
  # 10x10: 1 px and (0.6, 0.8) px = 1 px.
  sizes = np.array([[100, 200], [10, 10]])
  np.testing.assert_allclose(
      evaluate.landmark_detected_percentage(pred, true, visibility, [1, 85, 86], sizes),
      [0.75, 0.75, 1.0],
      atol=1e-6,
  )


def test_landmark_metrics_keys():
  pred, true, visibility = _landmarks()
  m = evaluate.landmark_metrics(pred, true, visibility, thresholds=(5, 23, 112))
  assert m["landmark_ne"] == pytest.approx(0.4 / 3)
  assert m["landmark_ne_left_collar"] == pytest.approx(0.3)
  assert math.isnan(m["landmark_ne_right_hem"])
  # Pixels of the bbox resized to 224x224: distances 0.5, 0.1, 0.1, 0 -> 112, 22.4, 22.4, 0 px.
  assert {k: v for k, v in m.items() if k.startswith("landmark_detected")} == pytest.approx(
      {
          "landmark_detected_bbox224_5px": 0.25,
          "landmark_detected_bbox224_23px": 0.75,
          "landmark_detected_bbox224_112px": 1.0,
      }
  )


def test_landmark_metrics_in_the_bbox_frame():
  """x over the bbox's width, y over its height; visible landmarks outside the bbox left out."""
  true = np.zeros((2, 8, 2), np.float32)
  pred = np.zeros((2, 8, 2), np.float32)
  bbox = np.array([[0.2, 0.1, 0.6, 0.3], [0.0, 0.5, 0.5, 1.0]])  # 0.4 wide, 0.2 high  # 0.5 x 0.5
  visibility = np.full((2, 8), 3)
  true[0, 0], pred[0, 0], visibility[0, 0] = (0.3, 0.2), (0.34, 0.23), 0  # (0.1, 0.15) -> 0.18
  true[1, 0], pred[1, 0], visibility[1, 0] = (0.25, 0.75), (0.25, 0.80), 0  # (0, 0.1) -> 0.1
  true[0, 1], pred[0, 1], visibility[0, 1] = (0.7, 0.2), (0.7, 0.2), 0  # outside: not counted
  true[1, 1], pred[1, 1], visibility[1, 1] = (0.1, 0.6), (0.2, 0.6), 0  # (0.2, 0) -> 0.2
  m = evaluate.landmark_metrics(pred, true, visibility, bbox)
  assert m["landmark_ne_left_collar"] == pytest.approx((np.hypot(0.1, 0.15) + 0.1) / 2)
  assert m["landmark_ne_right_collar"] == pytest.approx(0.2)
  assert m["landmark_ne"] == pytest.approx(((np.hypot(0.1, 0.15) + 0.1) / 2 + 0.2) / 2)
  # In the image frame the same errors would be about half as large.
  _, image_ne = evaluate.landmark_normalized_error(pred, true, visibility)
  assert image_ne < 0.6 * m["landmark_ne"]


def test_landmark_shape_error():
  with pytest.raises(ValueError, match="landmark_normalized_error: need pred/true"):
    evaluate.landmark_normalized_error(np.zeros((2, 8, 2)), np.zeros((2, 8, 2)), np.zeros((2, 6)))


# Accumulator.


def test_accumulator_concatenates_and_drops_masked_rows():
  acc = evaluate.MetricAccumulator()
  acc.update(logits=np.eye(3)[:2], labels=[0, 1])
  acc.update(mask=[True, False], logits=np.eye(3)[1:], labels=[1, 2])
  arrays = acc.arrays()
  np.testing.assert_array_equal(arrays["labels"], [0, 1, 1])
  assert evaluate.category_metrics(arrays["logits"], arrays["labels"], ks=(1,)) == {
      "category_top1": 1.0
  }
  with pytest.raises(ValueError, match="'labels' has"):
    acc.update(mask=[True], labels=[1, 2])
