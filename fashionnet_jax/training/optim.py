"""Optimiser: SGD with momentum (the paper's) or AdamW, per-group via optax.partition.

Each parameter group (schedule.GROUPS) gets its own transform, so groups can take
their own learning-rate multiplier, and a stage's frozen groups get exactly zero
update: the stage's group mask arrives as the extra argument `group_mask` (data,
not a constant, so a stage switch does not recompile the step). Gradients are
masked before the optimiser as well (they do not count in the clipping norm), and
a frozen group's optimiser state is left exactly as it was (`hold_state_when_frozen`):
AdamW's step count does not advance under it, SGD's weight decay does not
accumulate into its momentum, so a group unfrozen later resumes where it stopped.

Fine-tuning's new layers: the parameters that `init_from` did not fill (the
TrainSetup passes the ones it did, `pretrained`) learn at
`config.optimizer.new_layer_lr_multiplier` x the rate; the rest at 1x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from fashionnet_jax.errors import ConfigError
from fashionnet_jax.training.schedule import GROUPS


def learning_rate_schedule(opt_config, total_steps: int) -> optax.Schedule:
  lr, warmup = float(opt_config.learning_rate), int(opt_config.warmup_steps)
  warmup = min(warmup, max(total_steps - 1, 0))
  kind = opt_config.schedule
  if kind == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup, max(total_steps, warmup + 1), end_value=lr * 0.01
    )
  if kind == "step":
    boundaries = {
        int(f * total_steps): float(opt_config.step_factor) for f in opt_config.step_boundaries
    }
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, lr, max(warmup, 1)),
            optax.piecewise_constant_schedule(
                lr, {b - warmup: s for b, s in boundaries.items() if b > warmup}
            ),
        ],
        [warmup],
    )
  if kind == "constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, max(warmup, 1)), optax.constant_schedule(lr)], [warmup]
    )
  raise ConfigError(f"config.optimizer.schedule={kind!r}: use 'cosine', 'step' or 'constant'")


def scale_by_group(group: str) -> optax.GradientTransformationExtraArgs:
  """Multiplies updates by `group_mask[index of group]` (0 freezes the group)."""
  index = GROUPS.index(group)

  def update(updates, state, params=None, *, group_mask, **extra):
    del params, extra
    scale = group_mask[index]
    return jax.tree.map(lambda u: u * scale.astype(u.dtype), updates), state

  return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def hold_state_when_frozen(
    inner: optax.GradientTransformation, group: str
) -> optax.GradientTransformationExtraArgs:
  """`inner`'s update, with its state kept bitwise while `group_mask[group]` is 0."""
  index = GROUPS.index(group)

  def update(updates, state, params=None, *, group_mask, **extra):
    del extra
    new_updates, new_state = inner.update(updates, state, params)
    learns = group_mask[index] > 0
    held = jax.tree.map(lambda new, old: jnp.where(learns, new, old), new_state, state)
    return new_updates, held

  return optax.GradientTransformationExtraArgs(inner.init, update)


def _decay_mask(params):
  # Decay kernels only, not biases or normalisation scales (as in big_vision).
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _base(opt_config, lr) -> optax.GradientTransformation:
  name = opt_config.name
  if name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(float(opt_config.weight_decay), mask=_decay_mask),
        optax.sgd(
            lr, momentum=float(opt_config.momentum) or None, nesterov=bool(opt_config.nesterov)
        ),
    )
  if name == "adamw":
    return optax.adamw(lr, weight_decay=float(opt_config.weight_decay), mask=_decay_mask)
  raise ConfigError(f"config.optimizer.name={name!r}: use 'sgd' or 'adamw'")


def param_labels(params):
  """Labels each parameter by its top-level sub-module (its branch)."""

  def label(path, _):
    top = path[0].key if hasattr(path[0], "key") else str(path[0])
    if top not in GROUPS:
      raise ValueError(f"parameter {jax.tree_util.keystr(path)} is in no group of {GROUPS}")
    return top

  return jax.tree_util.tree_map_with_path(label, params)


def _path_name(path) -> str:
  """'pose_branch/fc6_pose/fc/kernel': a parameter's path as the weight loader names it."""
  return "/".join(str(getattr(p, "key", p)) for p in path)


def scale_by_layer(
    inner: optax.GradientTransformation, multiplier_of
) -> optax.GradientTransformation:
  """`inner`, with each parameter's update multiplied by `multiplier_of(path name)`.

  After SGD (with momentum) or AdamW (with its decoupled decay) the update is
  linear in the learning rate, so this is the parameter's learning rate x m. The
  state is `inner`'s own, with no level added: which layers are new (known only
  once the weight file is read) never changes the optimiser state's structure, so
  a checkpoint restores into the state of any make_optimizer of the same config.
  """

  def update(updates, state, params=None):
    updates, state = inner.update(updates, state, params)

    def scale(path, u):
      m = multiplier_of(_path_name(path))
      return u if m == 1.0 else u * jnp.asarray(m, u.dtype)

    return jax.tree_util.tree_map_with_path(scale, updates), state

  return optax.GradientTransformation(inner.init, update)


def _split_multipliers(multipliers):
  """{group: m} and {'group/layer': m} from config.optimizer.lr_multipliers."""
  groups, layers = {}, {}
  for key, m in multipliers.items():
    group = key.split("/")[0]
    if group not in GROUPS or key.count("/") > 1:
      raise ConfigError(
          f"config.optimizer.lr_multipliers: {key!r} is neither a group "
          f"({', '.join(GROUPS)}) nor 'group/layer'"
      )
    if float(m) <= 0:
      raise ConfigError(f"config.optimizer.lr_multipliers[{key!r}]={m}: must be > 0")
    (layers if "/" in key else groups)[key] = float(m)
  return groups, layers


def make_optimizer(
    config, total_steps: int, pretrained: frozenset[str] | None = None
) -> optax.GradientTransformationExtraArgs:
  """update(grads, state, params, group_mask=[len(GROUPS)]) -> (updates, state).

  `pretrained`: the parameters (path names, 'trunk/conv1_1/kernel') that
  `config.init_from` filled, as the TrainSetup found them when it loaded the file.
  Every other parameter started at random and learns at
  `config.optimizer.new_layer_lr_multiplier` x its rate (fine-tuning's new layers,
  whatever the backbone: ResNet-50's fc6/fc7 too). None (no weight file: the demo,
  init_from='scratch'): no layer is newer than another, none is multiplied.
  `config.optimizer.lr_multipliers` scales a group ('heads') or one layer
  ('pose_branch/landmarks') on top. The state's structure depends on neither.
  """
  opt = config.optimizer
  schedule = learning_rate_schedule(opt, total_steps)
  group_multipliers, layer_multipliers = _split_multipliers(
      dict(opt.get("lr_multipliers", None) or {})
  )
  new_layer = float(opt.get("new_layer_lr_multiplier", 1.0))  # > 0: config_checks
  scales_new = pretrained is not None and new_layer != 1.0

  def multiplier_of(name):
    m = layer_multipliers.get("/".join(name.split("/")[:2]), 1.0)
    return m * new_layer if scales_new and name not in pretrained else m

  def group_tx(group):
    m = group_multipliers.get(group, 1.0)
    lr = schedule if m == 1.0 else (lambda step: m * schedule(step))
    base = _base(opt, lr)
    if scales_new or any(k.startswith(group + "/") for k in layer_multipliers):
      base = scale_by_layer(base, multiplier_of)
    return optax.chain(hold_state_when_frozen(base, group), scale_by_group(group))

  parts = [optax.partition({g: scale_by_group(g) for g in GROUPS}, param_labels)]
  if opt.get("grad_clip_norm", None):
    parts.append(optax.clip_by_global_norm(float(opt.grad_clip_norm)))
  parts.append(optax.partition({g: group_tx(g) for g in GROUPS}, param_labels))
  return optax.chain(*parts)


def param_names(params) -> frozenset[str]:
  """The path names of every parameter in `params` (a pure dict)."""
  return frozenset(_path_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0])


def global_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))
