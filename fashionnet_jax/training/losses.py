"""FashionNet's four losses (landmarks, visibility, category, attributes) and the
triplet losses for retrieval. The landmark loss is the paper's regression, or with the
heatmap head (models/heatmap.py) `heatmap_loss`. Every loss works in float32 (whatever the logits'
dtype), returns a scalar mean over the valid examples of the batch, and takes an
optional `mask` [B] (False = padding). A batch with nothing valid gives 0."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fashionnet_jax.errors import ConfigError
from fashionnet_jax.models.heatmap import gaussian_targets
from fashionnet_jax.schema import VISIBLE


def _batch_mask(mask, batch):
  return jnp.ones((batch,), bool) if mask is None else jnp.asarray(mask, bool)


def _masked_mean(values, valid):
  """Mean of `values` where `valid`; 0 when nothing is valid."""
  valid = valid.astype(jnp.float32)
  return jnp.sum(values * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def landmark_loss(pred, true, visibility, mask=None):
  """Visibility-weighted L2 landmark regression.

  L = mean_b Σ_l v_bl ‖l̂_bl − l_bl‖², v_bl = [visibility_bl == 0]: summed over an
  example's visible landmarks, averaged over the valid examples (an example with
  no visible landmark counts with 0). pred, true: [B, L, 2]; visibility: [B, L].
  """
  v = (jnp.asarray(visibility) == VISIBLE).astype(jnp.float32)
  diff = pred.astype(jnp.float32) - jnp.asarray(true, jnp.float32)
  per_example = jnp.sum(v * jnp.sum(jnp.square(diff), axis=-1), axis=-1)
  return _masked_mean(per_example, _batch_mask(mask, pred.shape[0]))


def heatmap_loss(heatmaps, true, visibility, sigma, mask=None):
  """The heatmap head's landmark loss: squared error to Gaussian targets over visible slots.

  L = mean_b Σ_l v_bl Σ_cells (ĥ_bl − g_bl)² / (πσ²), g_bl the unit-peak Gaussian of σ map
  cells around l_bl (heatmap.gaussian_targets), v_bl = [visibility_bl == 0]; πσ² is a
  Gaussian's energy Σ g², so an all-zero map costs ~1 a landmark at any map size (the
  choice: models/heatmap.py). Other slots give nothing, whatever their maps or coordinates.
  heatmaps: [B, h, w, L]; true: [B, L, 2] in [0, 1]; visibility: [B, L].
  """
  maps = jnp.asarray(heatmaps, jnp.float32)
  targets = gaussian_targets(true, visibility, maps.shape[1:3], sigma)
  visible = jnp.asarray(visibility) == VISIBLE
  squared = jnp.sum(jnp.square(maps - targets), axis=(1, 2))  # [B, L]
  # where, not a product: a masked slot's non-finite map must not reach the sum.
  per_example = jnp.sum(jnp.where(visible, squared, 0.0), axis=-1)
  per_example = per_example / (np.pi * jnp.square(jnp.float32(sigma)))
  return _masked_mean(per_example, _batch_mask(mask, maps.shape[0]))


def visibility_loss(logits, visibility, mask=None):
  """Softmax cross-entropy of each landmark's visibility.

  Target 0 = visible (visibility 0), 1 = invisible (occluded 1, truncated 2 and
  unused 3). Slots that a garment lacks are supervised as invisible, so that the
  predicted visibility, which gates the local branch's landmark pooling, learns
  to close them: otherwise an upper-body top would pool 2 untrained positions.
  L = mean over valid examples' landmarks of −log softmax(logits)[target].
  logits: [B, L, 2]; visibility: [B, L].
  """
  visibility = jnp.asarray(visibility)
  target = (visibility != VISIBLE).astype(jnp.int32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), target)
  valid = jnp.broadcast_to(_batch_mask(mask, logits.shape[0])[:, None], visibility.shape)
  return _masked_mean(ce, valid)


def category_loss(logits, labels, mask=None):
  """Softmax cross-entropy −log softmax(logits)[label], mean over examples with a label (≠ −1)."""
  labels = jnp.asarray(labels)
  valid = (labels >= 0) & _batch_mask(mask, logits.shape[0])
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), jnp.maximum(labels, 0)
  )
  return _masked_mean(ce, valid)


def attribute_loss(logits, labels, pos_weight, neg_weight, mask=None):
  """Weighted sigmoid cross-entropy over attributes (the paper's w_pos / w_neg).

  y_j = [label_j == 1] (0 unknown and −1 negative both count as not positive);
  per example ℓ = (1/A) Σ_j −(w_pos_j y_j log σ(z_j) + w_neg_j (1 − y_j) log(1 − σ(z_j))),
  i.e. the paper's sum over attributes divided by A (so loss weights do not depend
  on A), then the mean over valid examples. logits, labels: [B, A]; weights: [A].
  """
  y = (jnp.asarray(labels) == 1).astype(jnp.float32)
  z = logits.astype(jnp.float32)
  # log σ(z) and log(1 − σ(z)) = log σ(−z), both stable for any |z|.
  weighted = -(
      jnp.asarray(pos_weight, jnp.float32) * y * jax.nn.log_sigmoid(z)
      + jnp.asarray(neg_weight, jnp.float32) * (1.0 - y) * jax.nn.log_sigmoid(-z)
  )
  return _masked_mean(jnp.mean(weighted, axis=-1), _batch_mask(mask, logits.shape[0]))


# The default floor of attribute_loss_weights: far below DeepFashion's typical
# attribute ratio (most of the 1,000 are rarer than 1%), so each gets its own weight.
ATTRIBUTE_MIN_RATIO = 1e-4


def attribute_loss_weights(positive_ratio, min_ratio=ATTRIBUTE_MIN_RATIO):
  """(w_pos, w_neg) from each attribute's own positive ratio p in the training set.

  w_pos = 1 / (2p), w_neg = 1 / (2(1 − p)): positives and negatives then carry
  equal expected weight p·w_pos = (1 − p)·w_neg = 1/2; p = 0.5 gives 1 and 1.
  p is clipped to [min_ratio, 1 − min_ratio] only to bound the weights by
  1 / (2·min_ratio). An attribute with no positive (p = 0) or no negative
  (p = 1) in the split has nothing to balance: it keeps the plain cross-entropy,
  (w_pos, w_neg) = (1, 1).
  """
  ratio = np.asarray(positive_ratio, np.float64)
  p = np.clip(ratio, min_ratio, 1.0 - min_ratio)
  w_pos, w_neg = 1.0 / (2.0 * p), 1.0 / (2.0 * (1.0 - p))
  degenerate = (ratio <= 0.0) | (ratio >= 1.0)
  w_pos, w_neg = np.where(degenerate, 1.0, w_pos), np.where(degenerate, 1.0, w_neg)
  return w_pos.astype(np.float32), w_neg.astype(np.float32)


def triplet_loss(anchor, positive, negative, margin, mask=None):
  """mean_b max(0, m + ‖a − p‖² − ‖a − n‖²) over valid triplets.

  Inputs [B, D] are expected L2-normalised (the model's 'embedding' is).
  """
  a, p, n = (jnp.asarray(e, jnp.float32) for e in (anchor, positive, negative))
  d_ap = jnp.sum(jnp.square(a - p), axis=-1)
  d_an = jnp.sum(jnp.square(a - n), axis=-1)
  return _masked_mean(jax.nn.relu(margin + d_ap - d_an), _batch_mask(mask, a.shape[0]))


def pairwise_squared_distances(embeddings):
  """[B, B] ‖e_i − e_j‖², via the Gram matrix (no [B, B, D] tensor), clipped at 0."""
  e = jnp.asarray(embeddings, jnp.float32)
  sq = jnp.sum(jnp.square(e), axis=-1)
  gram = jnp.matmul(e, e.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)


def _pairs(item_ids, mask):
  """Positive pairs (same item, i ≠ j) and negative pairs (other item) among valid examples."""
  ids = jnp.asarray(item_ids)
  valid = (ids >= 0) & _batch_mask(mask, ids.shape[0])
  both = valid[:, None] & valid[None, :]
  same = ids[:, None] == ids[None, :]
  eye = jnp.eye(ids.shape[0], dtype=bool)
  return both & same & ~eye, both & ~same, valid


def batch_hard_triplet_loss(embeddings, item_ids, margin, mask=None):
  """Batch-hard ("hard-aware") triplet loss for a P items × K images batch.

  For each anchor a: max(0, m + max_{p: same item} d(a, p) − min_{n: other item} d(a, n)),
  d = squared Euclidean; mean over anchors that have both a positive and a
  negative (items −1 and masked examples take no part).
  """
  d = pairwise_squared_distances(embeddings)
  pos, neg, valid = _pairs(item_ids, mask)
  hardest_pos = jnp.max(jnp.where(pos, d, -jnp.inf), axis=1)
  hardest_neg = jnp.min(jnp.where(neg, d, jnp.inf), axis=1)
  anchors = valid & jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
  loss = jax.nn.relu(margin + jnp.where(anchors, hardest_pos - hardest_neg, 0.0))
  return _masked_mean(loss, anchors)


def random_triplet_loss(embeddings, item_ids, margin, rng, mask=None):
  """Triplet loss with one uniformly drawn positive and negative per anchor (seeded by `rng`).

  Same terms and anchor rule as `batch_hard_triplet_loss`, random instead of hardest pairs.
  """
  d = pairwise_squared_distances(embeddings)
  pos, neg, valid = _pairs(item_ids, mask)
  pos_key, neg_key = jax.random.split(rng)
  b = d.shape[0]
  # argmax of uniform scores over the allowed columns = a uniform draw among them.
  pick_pos = jnp.argmax(jnp.where(pos, jax.random.uniform(pos_key, (b, b)), -1.0), axis=1)
  pick_neg = jnp.argmax(jnp.where(neg, jax.random.uniform(neg_key, (b, b)), -1.0), axis=1)
  d_ap = jnp.take_along_axis(d, pick_pos[:, None], axis=1)[:, 0]
  d_an = jnp.take_along_axis(d, pick_neg[:, None], axis=1)[:, 0]
  anchors = valid & jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
  return _masked_mean(jax.nn.relu(margin + d_ap - d_an), anchors)


# The Hard-Aware Deeply Cascaded embedding (HDC: Yuan, Yang, Zhang, ICCV 2017). The released
# layer is PairFastLoss as PkuRainBow/Hard-Aware-Deeply-Cascaed-Embedding (f96a749) ships it
# beside its DeepFashion prototxts (model_train/Deep_Fashion/{in_shop,cus_to_shop}): three
# layers with hard_ratio 1 / 0.5 / 0.2 and margin 1, nothing else set. Its later home,
# PkuRainBow/HDC.caffe, changed the layer after that: positives cut by hard_ratio too
# (db96e6c), negatives x `factor` (4b2fde6, default 10), no 1/rank_precision gradient scale
# (1d45313); it has no DeepFashion prototxt, and none of that is followed here.
HDC_KEPT_FRACTIONS = (1.0, 0.5, 0.2)  # hard_ratio of the three levels
HDC_CONTRASTIVE_MARGIN = 1.0  # pair_fast_loss_param margin, on squared distances
# "nested": level k ranks only what level k-1 kept, by level k-1's losses (the paper: each
# model is trained on the samples the one before it found hard); "per_level": the released
# layer, which sees only its level (pair_fast_loss).
CASCADE_SELECTIONS = ("nested", "per_level")
CASCADE_PAIR_LOSSES = ("contrastive", "triplet")


def _hardest(scores, candidates, count):
  """The `count` highest-scoring candidates (ties: lower flat index first), as a mask."""
  flat = jnp.where(candidates, scores, -jnp.inf).reshape(-1)
  order = jnp.argsort(-flat, stable=True)
  rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.size, dtype=order.dtype))
  return (rank.reshape(scores.shape) < count) & candidates


def _kept_count(candidates, fraction):
  """int(count · hard_ratio) as the layer computes it: a float32 product, truncated."""
  return jnp.floor(jnp.sum(candidates).astype(jnp.float32) * jnp.float32(fraction))


def _triplet_rank_precision(d, pos, neg):
  """Forward_cpu's triplet_rank_precision: the share of triplets (a, p, n), a ≠ p of one
  item and n of another, with d(a, n) > d(a, p); 1 when the batch has no triplet."""
  triplets = pos[:, :, None] & neg[:, None, :]
  correct = jnp.sum(triplets & (d[:, None, :] > d[:, :, None]))
  count = jnp.sum(triplets)
  # The layer divides by 0 when no triplet is ranked right; one right bounds the scale by
  # the triplet count instead.
  return jnp.where(count > 0, jnp.maximum(correct, 1) / jnp.maximum(count, 1), 1.0)


def pair_fast_loss(d, pos, neg, hard_ratio, margin=HDC_CONTRASTIVE_MARGIN):
  """One released PairFastLoss layer (Forward_cpu and Backward_cpu of f96a749) on [B, B] d.

  Every positive pair (i < j) is kept, with loss d; negatives have loss max(0, m − d) and
  the layer lists each of them twice, as (i, j) and as (j, i), of which it keeps the
  int(2·N_neg·hard_ratio) highest. The value is the sum over what it kept divided by how
  many of those (copies included) have a loss > 0; 0 when none has. The gradient is the
  layer's: each kept pair with a loss > 0 pulled (or pushed) once, by the same divisor,
  times 1 / triplet_rank_precision (the layer's adaptive scale, the share of the batch's
  triplets ranked right, taken as a constant).
  """
  upper = jnp.triu(jnp.ones(d.shape, bool), k=1)
  positives = jnp.sum(jnp.where(pos & upper, d, 0.0))
  neg_losses = jnp.where(neg, jax.nn.relu(margin - d), 0.0)
  scores = jax.lax.stop_gradient(neg_losses)
  kept = _hardest(scores, neg, _kept_count(neg, hard_ratio))
  hard = jnp.sum(pos & upper & (d > 0)) + jnp.sum(kept & (scores > 0))
  hard = jnp.maximum(hard, 1).astype(jnp.float32)
  value = (positives + jnp.sum(jnp.where(kept, neg_losses, 0.0))) / hard
  # Backward_cpu walks pair_matrix, where both copies of a pair mark the same (i < j) cell.
  marked = (kept | kept.T) & upper
  backward = (positives + jnp.sum(jnp.where(marked, neg_losses, 0.0))) / hard
  scale = 1.0 / jax.lax.stop_gradient(_triplet_rank_precision(d, pos, neg))
  return jax.lax.stop_gradient(value) + scale * (backward - jax.lax.stop_gradient(backward))


def _contrastive_sets(d, pos, neg, margin):
  """The paper's contrastive losses: positives d, negatives max(0, m − d); each pair once."""
  upper = jnp.triu(jnp.ones(d.shape, bool), k=1)
  losses = (jnp.where(pos, d, 0.0), jax.nn.relu(margin - d))
  return losses, (pos & upper, neg & upper)


def _triplet_sets(d, pos, neg, margin):
  """Every triplet (a, p, n) of the batch: max(0, m + d(a, p) − d(a, n)), [B, B, B]."""
  loss = jax.nn.relu(margin + d[:, :, None] - d[:, None, :])
  return (loss,), (pos[:, :, None] & neg[:, None, :],)


def cascaded_embedding_loss(
    levels,
    item_ids,
    kept_fractions=HDC_KEPT_FRACTIONS,
    selection="nested",
    pair_loss="contrastive",
    margin=HDC_CONTRASTIVE_MARGIN,
    mask=None,
):
  """HDC's cascaded loss: (sum over levels, [K] per level).

  levels: [B, K, D], each level L2-normalised; d = squared Euclidean distance.

  "per_level" with "contrastive" is the released layer at every level
  (`pair_fast_loss`): all positive pairs, the hardest fraction of the negatives.

  "nested" is the paper's cascade: level 0 keeps ⌊kept_fractions[0]·N⌋ of the batch's N
  candidates, the hardest first; level k keeps ⌊kept_fractions[k]·N⌋ of what level k-1
  kept, ranked by level k-1's losses (the paper: a sample reaches the deeper model only
  when the shallower one found it hard). Positive pairs are cut like negatives: the
  paper's Fig. 2 trains the first model on all pairs and each next one on the pairs the
  one before selected, positives and negatives alike. The two are ranked and counted
  apart (as the released layer does), so that the few positives are not crowded out by
  the many negatives. Each pair counts once, with no weight between the two sets.
  "triplet" ranks the batch's triplets instead (per_level: each level its own).
  A level's loss is the sum over what it kept divided by how many of those have a
  non-zero loss (the layer's hard_loss / all_hard_cnt); 0 when none has.
  """
  levels = jnp.asarray(levels, jnp.float32)
  pos, neg, _ = _pairs(item_ids, mask)
  kept, previous, per_level = None, None, []
  for k in range(levels.shape[1]):
    d = pairwise_squared_distances(levels[:, k])
    if pair_loss == "contrastive" and selection == "per_level":
      per_level.append(pair_fast_loss(d, pos, neg, kept_fractions[k], margin))
      continue
    if pair_loss == "contrastive":
      losses, candidates = _contrastive_sets(d, pos, neg, margin)
    else:
      losses, candidates = _triplet_sets(d, pos, neg, margin)
    scores = [jax.lax.stop_gradient(x) for x in losses]
    counts = [_kept_count(c, kept_fractions[k]) for c in candidates]
    if selection == "per_level" or kept is None:
      kept = [_hardest(s, c, n) for s, c, n in zip(scores, candidates, counts)]
    else:  # nested: among what level k-1 kept, the hardest by level k-1's losses
      kept = [_hardest(s, c, n) for s, c, n in zip(previous, kept, counts)]
    previous = scores
    total = sum(jnp.sum(jnp.where(m, x, 0.0)) for m, x in zip(kept, losses))
    hard = sum(jnp.sum(m & (s > 0)) for m, s in zip(kept, scores))
    per_level.append(total / jnp.maximum(hard, 1).astype(jnp.float32))
  per_level = jnp.stack(per_level)
  return jnp.sum(per_level), per_level


def check_cascade_loss(cascade, num_levels: int) -> None:
  """config.loss.cascade: one kept fraction in (0, 1] per level, known selection and loss."""
  fractions = tuple(cascade.kept_fractions)
  if len(fractions) != num_levels or not all(0 < float(f) <= 1 for f in fractions):
    raise ConfigError(
        f"config.loss.cascade.kept_fractions={fractions}: need one fraction in "
        f"(0, 1] per level of config.model.cascade_levels ({num_levels})"
    )
  for key, choices in (("selection", CASCADE_SELECTIONS), ("pair_loss", CASCADE_PAIR_LOSSES)):
    if cascade[key] not in choices:
      raise ConfigError(
          f"config.loss.cascade.{key}={cascade[key]!r}: use one of " f"{', '.join(choices)}"
      )
