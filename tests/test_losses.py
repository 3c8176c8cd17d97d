"""The four FashionNet losses and the triplet losses on hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np

from fashionnet_jax.training import losses


def test_landmark_loss_counts_only_visible_and_averages_examples():
  pred = np.zeros((3, 3, 2), np.float32)
  true = np.array(
      [[[1, 0], [0, 2], [3, 3]], [[1, 1], [0, 0], [0, 0]], [[5, 5], [5, 5], [5, 5]]], np.float32
  )
  # visible, occluded, truncated / visible, unused, visible / padding example
  vis = np.array([[0, 1, 2], [0, 3, 0], [0, 0, 0]])
  mask = np.array([True, True, False])
  got = losses.landmark_loss(pred, true, vis, mask)
  # example 0: 1; example 1: 2 + 0; mean over 2 valid examples.
  np.testing.assert_allclose(got, (1 + 2) / 2)
  # Without the mask the padding example adds 3·50.
  np.testing.assert_allclose(losses.landmark_loss(pred, true, vis), (1 + 2 + 150) / 3)


def test_visibility_loss_targets_and_unused_slots():
  logits = np.array([[[2.0, 0.0], [2.0, 0.0], [0.0, 3.0], [9.0, -9.0]]], np.float32)
  vis = np.array([[0, 1, 2, 3]])
  ce = lambda z, t: -jax.nn.log_softmax(jnp.asarray(z, jnp.float32))[t]
  # An unused slot (3) is supervised as invisible: the gate of the local branch's
  # pooling must learn to close it (here it is predicted visible, a large loss).
  want = (ce([2, 0], 0) + ce([2, 0], 1) + ce([0, 3], 1) + ce([9, -9], 1)) / 4
  np.testing.assert_allclose(losses.visibility_loss(logits, vis), want, rtol=1e-6)
  assert float(losses.visibility_loss(logits, vis, mask=np.array([False]))) == 0.0


def test_category_loss_skips_missing_labels_and_padding():
  logits = np.array(
      [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [1.0, 1.0, 9.0]], np.float32
  )
  labels = np.array([2, -1, 0, 1])
  mask = np.array([True, True, True, False])
  log_p = jax.nn.log_softmax(logits)
  want = -(log_p[0, 2] + log_p[2, 0]) / 2
  np.testing.assert_allclose(losses.category_loss(logits, labels, mask), want, rtol=1e-6)


def test_attribute_loss_weights_follow_each_attributes_own_ratio():
  # DeepFashion: most attributes are rarer than 1%; each keeps its own weight down
  # to the floor (1e-4 by default); no positive at all -> the plain loss (1, 1).
  w_pos, w_neg = losses.attribute_loss_weights(np.array([0.002, 0.0005, 1e-6, 0.0, 1.0]))
  np.testing.assert_allclose(w_pos, [250.0, 1000.0, 5000.0, 1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(w_neg, [1 / 1.996, 1 / 1.999, 1 / 1.9998, 1.0, 1.0], rtol=1e-6)
  w_pos, _ = losses.attribute_loss_weights(np.array([1e-6]), min_ratio=1e-6)
  np.testing.assert_allclose(w_pos, [5e5], rtol=1e-6)


def test_attribute_loss_weights_and_formula():
  w_pos, w_neg = losses.attribute_loss_weights(np.array([0.5, 0.1, 0.0]))
  np.testing.assert_allclose(w_pos, [1.0, 5.0, 1.0], rtol=1e-6)  # p=0: no positive, plain loss
  np.testing.assert_allclose(w_neg, [1.0, 1 / 1.8, 1.0], rtol=1e-6)
  logits = np.array([[0.0, 2.0, -1.0], [1.0, 1.0, 1.0]], np.float32)
  labels = np.array([[1, -1, 0], [1, 1, 1]], np.int8)
  mask = np.array([True, False])
  sig = lambda z: 1 / (1 + np.exp(-z))
  want = (
      -(1.0 * np.log(sig(0.0)) + w_neg[1] * np.log(1 - sig(2.0)) + w_neg[2] * np.log(1 - sig(-1.0)))
      / 3
  )
  np.testing.assert_allclose(
      losses.attribute_loss(logits, labels, w_pos, w_neg, mask), want, rtol=1e-5
  )


def test_losses_are_float32_and_stable_for_large_bf16_logits():
  big = jnp.asarray([[300.0, -300.0]], jnp.bfloat16)
  # Confidently wrong: CE = 600 exactly, not inf/nan.
  np.testing.assert_allclose(losses.category_loss(big, np.array([1])), 600.0)
  vis_logits = jnp.asarray([[[-300.0, 300.0]]], jnp.bfloat16)
  np.testing.assert_allclose(losses.visibility_loss(vis_logits, np.array([[0]])), 600.0)
  attr = jnp.asarray([[1000.0, -1000.0]], jnp.bfloat16)
  got = losses.attribute_loss(attr, np.array([[-1, 1]]), np.ones(2), np.ones(2))
  np.testing.assert_allclose(got, 1000.0)  # (1000 + 1000) / 2 attributes
  assert got.dtype == jnp.float32
  grad = jax.grad(lambda z: losses.attribute_loss(z, np.array([[-1, 1]]), np.ones(2), np.ones(2)))(
      attr
  )
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_triplet_loss_hinge():
  a = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
  p = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
  n = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
  # row 0: 0.2 + 2 − 0 = 2.2; row 1: max(0, 0.2 + 0 − 4) = 0
  np.testing.assert_allclose(losses.triplet_loss(a, p, n, 0.2), 1.1, rtol=1e-6)
  np.testing.assert_allclose(losses.triplet_loss(a, p, n, 0.2, mask=np.array([False, True])), 0.0)


def unit(angles):
  return np.stack([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)


def hand_batch_hard(d, margin, triplets):
  """mean over (anchor, positives, negatives) of max(0, m + max d(a, pos) − min d(a, neg))."""
  return np.mean([max(0.0, margin + d[a, pos].max() - d[a, neg].min()) for a, pos, neg in triplets])


def test_batch_hard_picks_farthest_positive_and_closest_negative():
  # Item 0 at angles 0, 0.1, 0.5; item 1 at 1.0, 3.0; item 2 alone (no positive); one item −1.
  e = unit(np.array([0.0, 0.1, 0.5, 1.0, 3.0, 2.0, 0.05]))
  ids = np.array([0, 0, 0, 1, 1, 2, -1])
  d = ((e[:, None] - e[None]) ** 2).sum(-1)
  margin = 0.5
  want = hand_batch_hard(
      d,
      margin,
      [
          (0, [1, 2], [3, 4, 5]),
          (1, [0, 2], [3, 4, 5]),
          (2, [0, 1], [3, 4, 5]),
          (3, [4], [0, 1, 2, 5]),
          (4, [3], [0, 1, 2, 5]),
      ],
  )
  np.testing.assert_allclose(losses.batch_hard_triplet_loss(e, ids, margin), want, rtol=1e-5)
  # Anchor 3's hardest negative is example 2 (angle 0.5): masking 2 removes it as
  # anchor, as positive and as negative, so anchor 3 falls back to example 5.
  mask = np.array([1, 1, 0, 1, 1, 1, 1], bool)
  want_masked = hand_batch_hard(
      d,
      margin,
      [(0, [1], [3, 4, 5]), (1, [0], [3, 4, 5]), (3, [4], [0, 1, 5]), (4, [3], [0, 1, 5])],
  )
  assert want_masked != want
  np.testing.assert_allclose(
      losses.batch_hard_triplet_loss(e, ids, margin, mask), want_masked, rtol=1e-5
  )
  grad = jax.grad(losses.batch_hard_triplet_loss)(jnp.asarray(e), ids, margin, mask)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[2] == 0)


def test_batch_hard_without_valid_anchor_is_zero():
  e = unit(np.array([0.0, 1.0]))
  assert float(losses.batch_hard_triplet_loss(e, np.array([0, 1]), 0.3)) == 0.0


def test_random_triplet_is_seeded_and_draws_allowed_pairs():
  rng = np.random.default_rng(0)
  e = rng.normal(size=(12, 4)).astype(np.float32)
  e /= np.linalg.norm(e, axis=-1, keepdims=True)
  ids = np.repeat(np.arange(4), 3)  # P=4 items × K=3
  key = jax.random.key(1)
  assert float(losses.random_triplet_loss(e, ids, 0.3, key)) == float(
      losses.random_triplet_loss(e, ids, 0.3, key)
  )
  draws = [float(losses.random_triplet_loss(e, ids, 0.3, jax.random.key(s))) for s in range(6)]
  assert len(set(draws)) > 1  # different seeds pick different pairs
  hard = float(losses.batch_hard_triplet_loss(e, ids, 0.3))
  assert all(x <= hard + 1e-6 for x in draws)  # never harder than the hardest pairs
  # K=2, P=2: one positive per anchor, two candidate negatives; the loss is the mean
  # of one of the two hinge values per anchor.
  e2, ids2 = e[:4], np.array([0, 0, 1, 1])
  d = ((e2[:, None] - e2[None]) ** 2).sum(-1)
  options = [
      sorted(max(0.0, 0.3 + d[i, i ^ 1] - d[i, j]) for j in range(4) if ids2[j] != ids2[i])
      for i in range(4)
  ]
  reachable = np.array([np.mean(c) for c in np.array(np.meshgrid(*options)).reshape(4, -1).T])
  for seed in range(4):
    got = float(losses.random_triplet_loss(e2, ids2, 0.3, jax.random.key(seed)))
    assert np.min(np.abs(reachable - got)) < 1e-5
