"""The optimiser per parameter group: a frozen group's state stays exactly as it was."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny import tiny_config

from fashionnet_jax.training.optim import make_optimizer
from fashionnet_jax.training.schedule import GROUPS


def _params():
  rng = np.random.default_rng(0)
  return {
      g: {
          "kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
          "bias": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
      }
      for g in GROUPS
  }


def _leaves_of(tree, group):
  """The optimiser state leaves of one group (their path names it), by path."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {
      jax.tree_util.keystr(p): np.asarray(v)
      for p, v in flat
      if f"'{group}'" in jax.tree_util.keystr(p)
  }


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_frozen_group_state_is_bitwise_unchanged(name):
  config = tiny_config(
      **{"optimizer.name": name, "optimizer.momentum": 0.9, "optimizer.weight_decay": 5e-4}
  )
  tx = make_optimizer(config, total_steps=100)
  params = _params()
  state = tx.init(params)
  grads = jax.tree.map(lambda p: jnp.ones_like(p) * 0.3, params)
  warm = np.ones(len(GROUPS), np.float32)
  update = jax.jit(lambda g, s, p, m: tx.update(g, s, p, group_mask=m))
  for _ in range(3):  # non-trivial moments / momentum / count in every group
    updates, state = update(grads, state, params, warm)
  frozen = warm.copy()
  frozen[GROUPS.index("heads")] = 0.0
  before = _leaves_of(state, "heads")
  assert before and any(v.any() for v in before.values())
  trunk_before = _leaves_of(state, "trunk")
  for _ in range(5):
    updates, state = update(grads, state, params, frozen)
    assert all(not np.asarray(u).any() for u in jax.tree.leaves(updates["heads"]))
  after = _leaves_of(state, "heads")
  assert after.keys() == before.keys()
  for path in before:  # moments, momentum and AdamW's count: exactly as they were
    np.testing.assert_array_equal(after[path], before[path], err_msg=path)
  trunk_after = _leaves_of(state, "trunk")
  assert any(not np.array_equal(trunk_after[p], trunk_before[p]) for p in trunk_before)


def test_layer_multiplier_scales_one_layers_learning_rate():
  # New layers (config.optimizer.lr_multipliers 'group/layer') learn at m x lr; the
  # rest of their group at the group's rate.
  base = tiny_config(
      **{"optimizer.momentum": 0.0, "optimizer.weight_decay": 0.0, "optimizer.grad_clip_norm": 0.0}
  )
  fast = tiny_config(
      **{"optimizer.momentum": 0.0, "optimizer.weight_decay": 0.0, "optimizer.grad_clip_norm": 0.0}
  )
  fast.optimizer.lr_multipliers = {"heads/kernel": 10.0, "trunk": 3.0}
  params = _params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  mask = np.ones(len(GROUPS), np.float32)
  got = {}
  for name, config in (("base", base), ("fast", fast)):
    tx = make_optimizer(config, total_steps=100)
    got[name], _ = tx.update(grads, tx.init(params), params, group_mask=mask)
  np.testing.assert_allclose(
      got["fast"]["heads"]["kernel"], 10 * got["base"]["heads"]["kernel"], rtol=1e-6
  )
  np.testing.assert_array_equal(got["fast"]["heads"]["bias"], got["base"]["heads"]["bias"])
  np.testing.assert_allclose(
      got["fast"]["trunk"]["bias"], 3 * got["base"]["trunk"]["bias"], rtol=1e-6
  )
  assert np.abs(got["base"]["heads"]["kernel"]).max() > 0  # the schedule is past warm-up 0


def test_unknown_multiplier_key_is_a_config_error():
  from fashionnet_jax.errors import ConfigError

  config = tiny_config()
  config.optimizer.lr_multipliers = {"head/fc": 10.0}
  with pytest.raises(ConfigError, match=r"'head/fc' is neither a group"):
    make_optimizer(config, total_steps=10)
