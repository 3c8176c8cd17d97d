"""The Hard-Aware Deeply Cascaded embedding (HDC): the paper's nested mining rule against a
hand-written NumPy reference (the released per_level layer: test_hdc_reference.py), the heads,
the full-size config, the eval keys and the report table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny import fake_batch, tiny_config

from configs import consumer2shop_cascaded, full_size, inshop_cascaded
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.evaluation import report
from fashionnet_jax.models import create_model
from fashionnet_jax.models.cascade import CASCADE_LEVELS, CascadeEmbedding
from fashionnet_jax.models.fashionnet import Heads
from fashionnet_jax.training import losses
from fashionnet_jax.models.functional import abstract_graphdef
from fashionnet_jax.training.optim import make_optimizer
from fashionnet_jax.training.runs import model_fn
from fashionnet_jax.training.schedule import Schedule
from fashionnet_jax.training.step import abstract_train_state, train_step
from fashionnet_jax.training.train_setup import TrainSetup


def _reference_level_losses(levels, items, fractions, nested, pair_loss, margin):
  """NumPy, loop by loop: per level the pair losses (positives d, negatives max(0, m − d),
  each unordered pair once, positives and negatives as two sets) or the triplet losses; each
  set keeps its hardest int(n·fraction), of everything (level 0, or not nested) or of what
  the level before kept ranked by the level before's losses (nested); the level's loss is
  the sum over kept / the number kept with a loss > 0."""
  b, k, _ = levels.shape
  out, kept_prev, scores_prev = [], None, None
  for level in range(k):
    e = levels[:, level].astype(np.float64)
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    sets = []  # per set: {candidate: loss}
    if pair_loss == "contrastive":
      pos = {(i, j): d[i, j] for i in range(b) for j in range(i + 1, b) if items[i] == items[j]}
      neg = {
          (i, j): max(margin - d[i, j], 0.0)
          for i in range(b)
          for j in range(i + 1, b)
          if items[i] != items[j]
      }
      sets = [pos, neg]
    else:
      sets = [
          {
              (a, p, n): max(margin + d[a, p] - d[a, n], 0.0)
              for a in range(b)
              for p in range(b)
              for n in range(b)
              if p != a and items[p] == items[a] and items[n] != items[a]
          }
      ]
    kept = []
    for s, losses_ in enumerate(sets):
      count = int(np.float32(len(losses_)) * np.float32(fractions[level]))
      if nested and kept_prev is not None:
        pool = sorted(kept_prev[s], key=lambda c: -scores_prev[s][c])
      else:
        pool = sorted(losses_, key=lambda c: -losses_[c])
      kept.append(pool[:count])
    total = sum(sets[s][c] for s in range(len(sets)) for c in kept[s])
    hard = sum(1 for s in range(len(sets)) for c in kept[s] if sets[s][c] > 0)
    out.append(total / max(hard, 1))
    kept_prev, scores_prev = kept, sets
  return np.array(out)


def _embeddings(seed, b=12, k=3, dim=4):
  x = np.random.default_rng(seed).normal(size=(b, k, dim)).astype(np.float32)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "selection,pair_loss,margin",
    [("nested", "contrastive", 1.0), ("nested", "triplet", 0.5), ("per_level", "triplet", 0.5)],
)
def test_mining_rule_matches_numpy_reference(selection, pair_loss, margin):
  items = np.repeat(np.arange(4), 3)  # P=4 items x K=3 images
  levels = _embeddings(0)
  total, per_level = jax.jit(losses.cascaded_embedding_loss, static_argnums=(2, 3, 4))(
      levels, items, (1.0, 0.5, 0.2), selection, pair_loss, margin
  )
  want = _reference_level_losses(
      levels, items, (1.0, 0.5, 0.2), selection == "nested", pair_loss, margin
  )
  np.testing.assert_allclose(per_level, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(total, want.sum(), rtol=1e-5)


def test_nested_cuts_positives_where_per_level_keeps_them():
  """Every negative beyond the margin: only positives have a loss. The released layer
  (per_level) keeps them all at every level; the paper's cascade keeps the hardest."""
  items = np.repeat(np.arange(4), 3)
  x = np.eye(8)[items] + 0.15 * np.random.default_rng(0).normal(size=(12, 8))
  x = x / np.linalg.norm(x, axis=-1, keepdims=True)
  levels = np.repeat(x[:, None], 3, axis=1).astype(np.float32)
  loss = jax.jit(losses.cascaded_embedding_loss, static_argnames=("selection",))
  _, nested = loss(levels, items, selection="nested")
  _, per_level = loss(levels, items, selection="per_level")
  want = _reference_level_losses(levels, items, losses.HDC_KEPT_FRACTIONS, True, "contrastive", 1.0)
  np.testing.assert_allclose(nested, want, rtol=1e-5)
  assert nested[0] < nested[1] < nested[2]
  np.testing.assert_allclose(per_level, nested[0], rtol=1e-5)


@pytest.mark.parametrize("selection", losses.CASCADE_SELECTIONS)
def test_masked_rows_take_no_part(selection):
  items = np.repeat(np.arange(4), 3)
  levels = _embeddings(1)
  loss = jax.jit(losses.cascaded_embedding_loss, static_argnames=("selection",))
  mask = np.arange(12) < 9  # the last item is padding
  _, masked = loss(levels, items, selection=selection, mask=mask)
  _, dropped = loss(levels[:9], items[:9], selection=selection)
  np.testing.assert_allclose(masked, dropped, rtol=1e-6)
  grads = jax.jit(jax.grad(lambda e: loss(e, items, selection=selection)[0]))(levels)
  assert np.all(np.isfinite(grads)) and np.any(grads != 0)


def _cascaded_tiny(**overrides):
  config = inshop_cascaded.cascaded(tiny_config())
  config.update_from_flattened_dict(overrides)
  return config


def test_heads_levels_are_float32_unit_and_concatenated():
  """bf16 trunk features in, float32 unit-length levels and concatenation out."""

  def build():
    rngs = nnx.Rngs(0)
    cascade = CascadeEmbedding(CASCADE_LEVELS, {"pool4": 6, "conv5_global": 5}, 4, rngs=rngs)
    return Heads(8, 3, 2, 4, rngs=rngs, cascade=cascade)

  def forward():  # compiled once: op-by-op initialisation is slow on a busy CPU
    normal = lambda i, shape: jax.random.normal(jax.random.key(i), shape, jnp.bfloat16)
    return build()(
        normal(0, (2, 8)), dict(pool4=normal(1, (2, 4, 4, 6)), conv5_global=normal(2, (2, 2, 2, 5)))
    )

  out = jax.jit(forward)()
  heads = nnx.eval_shape(build)
  levels = out["embedding_levels"]
  assert levels.shape == (2, 3, 4) and levels.dtype == jnp.float32
  np.testing.assert_allclose(jnp.linalg.norm(levels, axis=-1), 1.0, rtol=1e-5)
  assert out["embedding"].shape == (2, 12) and out["embedding"].dtype == jnp.float32
  np.testing.assert_allclose(jnp.linalg.norm(out["embedding"], axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(out["embedding"][:, 8:] * np.sqrt(3), levels[:, 2], rtol=1e-5)
  params = nnx.state(heads, nnx.Param).to_pure_dict()["cascade"]
  assert set(params) == {"embedding_pool4", "embedding_conv5_global"}
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
    "bad,message",
    [
        (("fc7_fusion", "pool4"), "shallow"),
        (("pool5",), "unknown"),
    ],
)
def test_level_errors_stop_the_trainer_at_start(tmp_path, bad, message):
  config = _cascaded_tiny(**{"model.cascade_levels": bad})
  with pytest.raises(ConfigError, match=message):
    TrainSetup(config, tmp_path)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"kept_fractions": (1.0, 0.5)}, "kept_fractions"),
        ({"kept_fractions": (1.0, 0.5, 0.0)}, "kept_fractions"),
        ({"selection": "greedy"}, "selection"),
        ({"pair_loss": "lifted"}, "pair_loss"),
    ],
)
def test_loss_config_errors(bad, message):
  """Checked by jit_train_step, when the TrainSetup starts."""
  cascade = _cascaded_tiny().loss.cascade
  cascade.update(bad)
  with pytest.raises(ConfigError, match=message):
    losses.check_cascade_loss(cascade, 3)


@pytest.mark.parametrize(
    "module,backbone",
    [(inshop_cascaded, "vgg16"), (consumer2shop_cascaded, "vgg16"), (inshop_cascaded, "resnet50")],
)
def test_full_size_config_new_layers_and_shapes(module, backbone):
  config = module.get_config("gpu")
  config.model.backbone = backbone
  assert config.image_size == 224 and config.model.dtype == "bfloat16"
  model = nnx.eval_shape(lambda: create_model(config.model))
  flat = nnx.state(model, nnx.Param).flat_state()
  cascade = ["/".join(map(str, path)) for path, _ in flat if "cascade" in path]
  # Under `heads`, which no ImageNet file fills: they learn at the new layers' rate.
  assert cascade and all(p.startswith("heads/") for p in cascade)
  assert config.optimizer.new_layer_lr_multiplier == full_size.NEW_LAYER_LR_MULTIPLIER == 10.0
  images = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
  out = jax.eval_shape(lambda x: create_model(config.model)(x), images)
  assert out["embedding_levels"].shape == (2, 3, 128)
  assert out["embedding_levels"].dtype == jnp.float32


def test_full_size_config_one_step_shapes_at_tiny_width():
  """The :gpu config's train step (bf16 trunk, SGD, new layers at 10x, dropout) traced at
  tiny width: abstract shapes only, nothing compiled (a compiled bf16 step costs minutes here)."""
  config = inshop_cascaded.get_config("gpu")
  config.update_from_flattened_dict(
      {
          "image_size": 32,
          "batch_size": 8,
          "input.retrieval_p": 4,
          "input.retrieval_k": 2,
          "model.width_multiplier": 1 / 16,
          "model.fc6_dim": 32,
          "model.fc6_local_dim": 16,
          "model.embedding_dim": 16,
          "model.num_attributes": 12,
      }
  )
  schedule = Schedule(config.stages, config.num_rounds)
  tx = make_optimizer(config, schedule.total_steps)
  state = abstract_train_state(model_fn(config), tx, 0)
  graphdef = abstract_graphdef(model_fn(config))
  stage = schedule.stages[1]  # retrieval: the triplet term is on
  batch = {k: jnp.asarray(v) for k, v in fake_batch(config).items()}
  batch["image"] = batch["image"].astype(jnp.uint8)
  aux = dict(w_pos=jnp.ones(12), w_neg=jnp.ones(12))
  new_state, metrics = jax.eval_shape(
      lambda s, b: train_step(
          s,
          b,
          stage.loss_weights,
          stage.group_mask,
          aux,
          graphdef=graphdef,
          tx=tx,
          loss_config=config.loss,
      ),
      state,
      batch,
  )
  assert metrics["loss_triplet"].shape == () and metrics["loss_triplet"].dtype == jnp.float32
  cascade = new_state.params["heads"]["cascade"]
  assert cascade["embedding_pool4"]["kernel"].shape == (32, 16)  # pool4: 512 / 16 channels
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new_state.params))


def test_report_lists_each_level_beside_the_concatenation(tmp_path):
  metrics = {f"retrieval_top{k}": 0.5 for k in (1, 20)}
  for level in ("pool4", "fc7_fusion"):
    metrics.update({f"retrieval_{level}_top{k}": 0.25 for k in (1, 20)})
  written = report.write_report(
      metrics, tmp_path, step=3, split="query", dataset="deepfashion/inshop"
  )
  table = written["markdown"].read_text()
  assert "| level | top-1 | top-20 |" in table
  assert "| pool4 | 0.2500 | 0.2500 |" in table and "| concatenation | 0.5000 | 0.5000 |" in table
  assert written["retrieval_plot"].exists()
