"""The compiled FashionNet train step: a pure function of the split model state.

As in flax/examples/gemma, the NNX model is split once into a static graph and
plain pytrees (models/functional.py: float32 parameters, other model state such
as batch statistics); the step merges them, runs the four losses of the paper
weighted by the current stage, and applies the optimiser. Stage weights and group masks are arguments
(data), so one compilation serves every stage. A non-finite loss term or
gradient leaves the state untouched and is counted.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from fashionnet_jax import sharding
from fashionnet_jax.data import transforms
from fashionnet_jax.models.functional import abstract_graphdef, merge_model, split_model
from fashionnet_jax.models.heatmap import HEATMAP_SIGMA
from fashionnet_jax.training import losses
from fashionnet_jax.training.optim import global_norm
from fashionnet_jax.training.schedule import LOSS_TERMS


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: updates applied + skipped
  params: Any  # pure dict of float32 arrays
  model_state: Any  # pure dict: batch statistics etc.
  opt_state: Any
  rng: jax.Array  # uint32 key data, for random triplet mining
  nonfinite_streak: jax.Array  # consecutive skipped updates
  nonfinite_total: jax.Array


def create_train_state(model_fn, tx, seed: int, shardings=None) -> tuple[Any, TrainState]:
  """Builds model and optimiser state in one compiled program.

  Run eagerly, NNX initialisers would compile one small program per parameter
  (tens of seconds on CPU); `model_fn()` returns the NNX model. With
  `shardings`, large parameters are created directly in their shards.
  """
  graphdef = abstract_graphdef(model_fn)

  def init():
    return _initial_state(model_fn(), tx, seed)

  if shardings is None:
    return graphdef, jax.jit(init)()
  return graphdef, jax.jit(init, out_shardings=shardings)()


def abstract_train_state(model_fn, tx, seed: int) -> TrainState:
  return jax.eval_shape(lambda: _initial_state(model_fn(), tx, seed))


def _initial_state(model, tx, seed: int) -> TrainState:
  _, params, model_state = split_model(model)
  state = TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=model_state,
      opt_state=tx.init(params),
      rng=jax.random.key_data(jax.random.key(seed)),
      nonfinite_streak=jnp.zeros((), jnp.int32),
      nonfinite_total=jnp.zeros((), jnp.int32),
  )
  return state


def loss_terms(outputs, batch, aux, loss_config, rng) -> dict[str, jax.Array]:
  """The paper's four losses (+ triplet) on one batch, each a float32 scalar.

  The landmark term is the regression's, or with the heatmap head (outputs carry
  'landmark_heatmaps') the maps' against Gaussian targets (losses.heatmap_loss).
  """
  mask = batch["mask"]
  if "landmark_heatmaps" in outputs:
    landmark = losses.heatmap_loss(
        outputs["landmark_heatmaps"],
        batch["landmarks"],
        batch["landmark_visibility"],
        float(loss_config.get("heatmap_sigma", HEATMAP_SIGMA)),
        mask=mask,
    )
  else:
    landmark = losses.landmark_loss(
        outputs["landmarks"], batch["landmarks"], batch["landmark_visibility"], mask=mask
    )
  terms = dict(
      landmark=landmark,
      visibility=losses.visibility_loss(
          outputs["visibility_logits"], batch["landmark_visibility"], mask=mask
      ),
      category=losses.category_loss(outputs["category_logits"], batch["category"], mask=mask),
      attribute=losses.attribute_loss(
          outputs["attribute_logits"], batch["attributes"], aux["w_pos"], aux["w_neg"], mask=mask
      ),
  )
  if "embedding_levels" in outputs:  # HDC's cascade (config.model.cascade_levels)
    c = loss_config.cascade
    terms["triplet"], _ = losses.cascaded_embedding_loss(
        outputs["embedding_levels"],
        batch["item"],
        tuple(c.kept_fractions),
        c.selection,
        c.pair_loss,
        float(c.margin),
        mask=mask,
    )
  elif loss_config.triplet_mining == "batch_hard":
    terms["triplet"] = losses.batch_hard_triplet_loss(
        outputs["embedding"], batch["item"], loss_config.triplet_margin, mask=mask
    )
  else:
    terms["triplet"] = losses.random_triplet_loss(
        outputs["embedding"], batch["item"], loss_config.triplet_margin, rng, mask=mask
    )
  return {k: terms[k].astype(jnp.float32) for k in LOSS_TERMS}


def train_step(
    state: TrainState, batch, loss_weights, group_mask, aux, *, graphdef, tx, loss_config
):
  """One update. loss_weights [5] and group_mask [6] come from the current stage."""
  rng, step_rng = jax.random.split(jax.random.wrap_key_data(state.rng))

  def loss_fn(params):
    model = merge_model(graphdef, params, state.model_state)
    outputs = model(transforms.normalize_on_device(batch["image"]), train=True)
    terms = loss_terms(outputs, batch, aux, loss_config, step_rng)
    # A term with weight 0 must not poison the total with its NaN.
    weighted = [
        jnp.where(loss_weights[i] > 0, loss_weights[i] * terms[k], 0.0)
        for i, k in enumerate(LOSS_TERMS)
    ]
    return sum(weighted), (terms, split_model(model)[2])

  (loss, (terms, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params, group_mask=group_mask)
  params = optax.apply_updates(state.params, updates)

  grad_norm = global_norm(grads)
  term_ok = jnp.stack(
      [jnp.isfinite(terms[k]) | (loss_weights[i] == 0) for i, k in enumerate(LOSS_TERMS)]
  )
  ok = jnp.all(term_ok) & jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
  new_state = state.replace(
      step=state.step + 1,
      params=keep(params, state.params),
      model_state=keep(model_state, state.model_state),
      opt_state=keep(opt_state, state.opt_state),
      rng=jax.random.key_data(rng),
      nonfinite_streak=jnp.where(ok, 0, state.nonfinite_streak + 1),
      nonfinite_total=state.nonfinite_total + (~ok).astype(jnp.int32),
  )
  metrics = {f"loss_{k}": terms[k] for k in LOSS_TERMS}
  metrics.update(
      loss=loss,
      grad_norm=grad_norm,
      update_skipped=(~ok).astype(jnp.float32),
      nonfinite_streak=new_state.nonfinite_streak,
      term_nonfinite=~term_ok,
  )
  return new_state, metrics


def jit_train_step(config, graphdef, tx, state_shardings, mesh):
  """The jitted train step: state donated, batch split over `data`, the rest replicated.

  Called as step_fn(state, batch, loss_weights, group_mask, aux) -> (state, metrics).
  """
  levels = config.model.get("cascade_levels", ())
  if levels:
    losses.check_cascade_loss(config.loss.cascade, len(levels))
  repl = sharding.replicated(mesh)
  step = lambda state, batch, w, m, aux: train_step(
      state, batch, w, m, aux, graphdef=graphdef, tx=tx, loss_config=config.loss
  )
  return jax.jit(
      step,
      donate_argnums=(0,),
      in_shardings=(state_shardings, sharding.batch_sharding(mesh), repl, repl, repl),
      out_shardings=(state_shardings, repl),
  )
