"""landmark_pool against a plain NumPy loop: values, where the gradient goes, none to landmarks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fashionnet_jax.models.landmark_pooling import landmark_pool


def loop_pool(features, landmarks, visible, window):
  """The specification, literally: cell = floor(coord·size) clipped; max over in-map window cells."""
  b, h, w, c = features.shape
  out = np.zeros((b, landmarks.shape[1], c), features.dtype)
  argmax = {}
  for i in range(b):
    for l in range(landmarks.shape[1]):
      if not visible[i, l]:
        continue
      row = min(max(int(np.floor(landmarks[i, l, 1] * h)), 0), h - 1)
      col = min(max(int(np.floor(landmarks[i, l, 0] * w)), 0), w - 1)
      r = window // 2
      cells = [
          (y, x)
          for y in range(row - r, row + r + 1)
          for x in range(col - r, col + r + 1)
          if 0 <= y < h and 0 <= x < w
      ]
      for ch in range(c):
        best = max(cells, key=lambda yx: features[i, yx[0], yx[1], ch])
        out[i, l, ch] = features[i, best[0], best[1], ch]
        argmax[(i, l, ch)] = best
  return out, argmax


def random_inputs(seed, b=3, h=5, w=6, c=4, num_landmarks=8):
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(b, h, w, c)).astype(np.float32)
  landmarks = rng.uniform(size=(b, num_landmarks, 2)).astype(np.float32)
  # Borders exactly: 0 and 1 on both axes (1 must clip into the last cell).
  landmarks[0, 0] = (0.0, 0.0)
  landmarks[0, 1] = (1.0, 1.0)
  landmarks[1, 2] = (1.0, 0.0)
  landmarks[1, 3] = (0.0, 1.0)
  visible = rng.uniform(size=(b, num_landmarks)) > 0.3
  visible[0, :2] = True
  visible[2, 5] = False
  return features, landmarks, visible


@pytest.mark.parametrize("window", [1, 3, 5])
def test_matches_loop(window):
  features, landmarks, visible = random_inputs(window)
  got = jax.jit(landmark_pool, static_argnames="window")(
      features, landmarks, visible, window=window
  )
  want, _ = loop_pool(features, landmarks, visible, window)
  np.testing.assert_array_equal(np.asarray(got), want)
  assert got.shape == (3, 8, 4)
  np.testing.assert_array_equal(np.asarray(got)[~visible], 0.0)


def test_window_one_is_the_landmark_cell():
  features = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
  landmarks = np.array([[[0.0, 0.0], [0.99, 0.26]], [[1.0, 1.0], [0.5, 0.5]]], np.float32)
  got = landmark_pool(features, landmarks, np.ones((2, 2), bool), window=1)
  # (row, col) = (0,0), (1,3); (3,3) clipped, (2,2)
  np.testing.assert_array_equal(np.asarray(got)[..., 0], [[0, 7], [16 + 15, 16 + 10]])


@pytest.mark.parametrize("window", [3, 5])
def test_gradient_goes_to_max_cells_not_landmarks(window):
  features, landmarks, visible = random_inputs(10 + window)
  cotangent = np.random.default_rng(0).normal(size=(3, 8, 4)).astype(np.float32)
  loss = lambda f, l: jnp.sum(landmark_pool(f, l, visible, window=window) * cotangent)
  grad_f, grad_l = jax.jit(jax.grad(loss, argnums=(0, 1)))(features, landmarks)
  _, argmax = loop_pool(features, landmarks, visible, window)
  want = np.zeros_like(features)
  for (i, l, ch), (y, x) in argmax.items():
    want[i, y, x, ch] += cotangent[i, l, ch]
  np.testing.assert_allclose(np.asarray(grad_f), want, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(grad_l), 0.0)


def test_gradient_matches_finite_differences():
  features, landmarks, visible = random_inputs(42, h=4, w=4, c=2, num_landmarks=6)
  features = features.astype(np.float64)
  # Pooled values are exact copies of inputs, so summing them in float64 keeps the
  # difference quotient precise; a small step keeps clear of max switches.
  pool = jax.jit(lambda x: landmark_pool(x, landmarks, visible))
  f = lambda x: np.sum(np.asarray(pool(x), np.float64) ** 2)
  grad = np.asarray(
      jax.grad(lambda x: jnp.sum(landmark_pool(x, landmarks, visible) ** 2))(
          features.astype(np.float32)
      )
  )
  eps = 1e-4
  for index in np.ndindex(features.shape):
    bump = np.zeros_like(features)
    bump[index] = eps
    plus, minus = (features + bump).astype(np.float32), (features - bump).astype(np.float32)
    numeric = (f(plus) - f(minus)) / (plus[index] - minus[index])
    assert abs(numeric - grad[index]) < 1e-3 * (1 + abs(grad[index])), index


def test_bfloat16_features_keep_dtype():
  features, landmarks, visible = random_inputs(3)
  got = landmark_pool(jnp.asarray(features, jnp.bfloat16), landmarks, visible)
  assert got.dtype == jnp.bfloat16
  want, _ = loop_pool(
      np.asarray(jnp.asarray(features, jnp.bfloat16).astype(jnp.float32)), landmarks, visible, 3
  )
  np.testing.assert_array_equal(np.asarray(got.astype(jnp.float32)), want)


def test_even_window_is_rejected():
  features, landmarks, visible = random_inputs(0)
  with pytest.raises(ValueError, match="window must be a positive odd number, got 2"):
    landmark_pool(features, landmarks, visible, window=2)
