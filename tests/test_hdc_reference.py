"""HDC's per_level rule against the released PairFastLoss layer, ported line by line.

The port follows layers/pair_fast_loss_layer.cpp of PkuRainBow/Hard-Aware-Deeply-Cascaed-Embedding
(commit f96a749, the layer released with the DeepFashion prototxts; its hard_ratio 1 / 0.5 / 0.2
and margin 1 are those of model_train/Deep_Fashion/in_shop/HDC_deploy.prototxt). Quoted C++ lines
are in the comments; its loops stay loops. Caffe's std::map iterates labels in increasing order.
"""

import jax
import numpy as np
import pytest

from fashionnet_jax.training import losses

F32 = np.float32  # Caffe's Dtype


def forward_cpu(bottom, labels, margin, hard_ratio, use_pos=0):
  """PairFastLossLayer<float>::Forward_cpu: (top[0] hard_loss, top[1] triplet_rank_precision,
  top[2] all_hard_cnt) and the blobs Backward_cpu reads (pair_matrix, diff_matrix)."""
  nums, channels = bottom.shape
  diff_matrix = np.zeros((nums * nums, channels), np.float64)
  dist_matrix = np.zeros(nums * nums, np.float64)
  # for (int i = 0; i < nums; ++i) for (int j = i + 1; j < nums; ++j)
  for i in range(nums):
    for j in range(i + 1, nums):
      # caffe_sub(channels, bottom + i*channels, bottom + j*channels, diff + channels*(i*nums + j))
      diff_matrix[i * nums + j] = bottom[i] - bottom[j]
      diff_matrix[j * nums + i] = bottom[j] - bottom[i]
      # dist_matrix[i * nums + j] = caffe_cpu_dot(channels, diff(i, j), diff(i, j))
      dist_matrix[i * nums + j] = np.dot(diff_matrix[i * nums + j], diff_matrix[i * nums + j])
      dist_matrix[j * nums + i] = dist_matrix[i * nums + j]
  pair_matrix = np.zeros(nums * nums)  # pair_matrix[(i * nums + j)] = Dtype(0)

  hard_loss = 0.0  # (the running `loss`, which nothing reads, is left out)
  neg_pair_count = F32(0)
  pos_pair_count = F32(0)
  triplet_count = 0.0
  correct_rank_count = 0.0

  label_data_map = {}  # map<int, vector<int>> label_data_map
  for i in range(nums):
    label_value = int(labels[i])  # static_cast<int>(bottom_label[i])
    label_data_map.setdefault(label_value, []).append(i)
  label_data_map = dict(sorted(label_data_map.items()))
  hard_loss_pos, hard_loss_neg = [], []  # vector<pair<float, pair<int, int>>>

  # /** calculate the triplet precision **/
  for ent1 in label_data_map:
    cur_size = len(label_data_map[ent1])
    if cur_size < 2:
      continue
    for j in range(cur_size - 1):
      for k in range(j + 1, cur_size):
        anc = label_data_map[ent1][j]
        pos = label_data_map[ent1][k]
        for ent2 in label_data_map:
          if ent1 == ent2:
            continue
          m_size = len(label_data_map[ent2])
          for n in range(m_size):
            triplet_count += 2
            neg = label_data_map[ent2][n]
            if dist_matrix[anc * nums + neg] > dist_matrix[anc * nums + pos]:
              correct_rank_count += 1
            if dist_matrix[pos * nums + neg] > dist_matrix[pos * nums + anc]:
              correct_rank_count += 1

  # /** loop all the possible pair-wise dataset and triplet dataset **/
  for ent1 in label_data_map:
    cur_size = len(label_data_map[ent1])
    # /** compute the same class pair-wise data loss **/
    for i in range(cur_size - 1):
      for j in range(i + 1, cur_size):
        pos_1 = label_data_map[ent1][i]
        pos_2 = label_data_map[ent1][j]
        loss_pos_pair = dist_matrix[pos_1 * nums + pos_2]
        if loss_pos_pair == 0:
          continue
        pos_pair_count += F32(1)
        hard_loss_pos.append((loss_pos_pair, (min(pos_1, pos_2), max(pos_1, pos_2))))
    # if (use_pos != 1): /** compute the different class pair-wise data loss **/
    if use_pos != 1:
      for i in range(cur_size):
        for ent2 in label_data_map:
          if ent1 == ent2:
            continue
          neg_size = len(label_data_map[ent2])
          for j in range(neg_size):
            neg_pair_count += F32(1)
            pos = label_data_map[ent1][i]
            neg = label_data_map[ent2][j]
            # Dtype loss_pos_neg = std::max(margin - dist_matrix[pos * nums + neg], Dtype(0.0))
            loss_pos_neg = max(margin - dist_matrix[pos * nums + neg], 0.0)
            hard_loss_neg.append((loss_pos_neg, (min(pos, neg), max(pos, neg))))

  # /** sort all the hard sample set **/ (std::sort, a.first > b.first)
  if hard_ratio < 1:
    hard_loss_pos.sort(key=lambda entry: -entry[0])
    if use_pos != 1:
      hard_loss_neg.sort(key=lambda entry: -entry[0])

  # int pos_hard_cnt = pos_pair_count * 1; int neg_hard_cnt = neg_pair_count * hard_ratio;
  pos_hard_cnt = int(pos_pair_count * 1)
  neg_hard_cnt = int(neg_pair_count * F32(hard_ratio))
  for i in range(pos_hard_cnt):
    hard_loss += hard_loss_pos[i][0]
  if use_pos != 1:
    for i in range(neg_hard_cnt):
      hard_loss += hard_loss_neg[i][0]

  all_hard_cnt = 0
  for i in range(pos_hard_cnt):
    if hard_loss_pos[i][0] > 0:
      all_hard_cnt += 1
      first, second = hard_loss_pos[i][1]
      pair_matrix[first * nums + second] = 1
  if use_pos != 1:
    for i in range(neg_hard_cnt):
      if hard_loss_neg[i][0] > 0:
        all_hard_cnt += 1
        first, second = hard_loss_neg[i][1]
        pair_matrix[first * nums + second] = 1
  hard_loss = hard_loss / all_hard_cnt
  triplet_rank_precision = correct_rank_count / triplet_count
  return hard_loss, triplet_rank_precision, all_hard_cnt, pair_matrix, diff_matrix


def backward_cpu(top_diff, top, pair_matrix, diff_matrix, labels, nums, channels):
  """PairFastLossLayer<float>::Backward_cpu: bottom[0]'s diff, [nums, channels]."""
  _, rank_precision, all_hard_cnt = top
  # Dtype alpha = (1 / rank_precision) * 2 * top[0]->cpu_diff()[0] / top[2]->cpu_data()[0];
  alpha = (1 / rank_precision) * 2 * top_diff / all_hard_cnt
  bout = np.zeros((nums, channels))
  for i in range(nums):
    for j in range(i + 1, nums):
      if pair_matrix[i * nums + j] == 1:
        if labels[i] == labels[j]:  # postive pair gradient update
          # caffe_cpu_axpby(channels, alpha, diff(i, j), Dtype(1), bout + i*channels)
          bout[i] += alpha * diff_matrix[i * nums + j]
          bout[j] += alpha * diff_matrix[j * nums + i]
        else:
          bout[i] += alpha * diff_matrix[j * nums + i]
          bout[j] += alpha * diff_matrix[i * nums + j]
  return bout


HARD_RATIOS = (1.0, 0.5, 0.2)  # the three PairFastLoss layers of the in_shop prototxt


def _released(levels, labels, margin=1.0):
  """Each level through its own layer (loss_weight 1): values [K] and bottom diffs [B, K, D]."""
  values, grads = [], []
  for k, ratio in enumerate(HARD_RATIOS):
    bottom = levels[:, k].astype(np.float64)
    *top, pair_matrix, diff_matrix = forward_cpu(bottom, labels, margin, ratio)
    values.append(top[0])
    grads.append(backward_cpu(1.0, top, pair_matrix, diff_matrix, labels, *bottom.shape))
  return np.array(values), np.stack(grads, axis=1)


def _ours(levels, labels, margin=1.0):
  def total(e):
    return losses.cascaded_embedding_loss(
        e, labels, HARD_RATIOS, "per_level", "contrastive", margin
    )

  (_, per_level), grads = jax.jit(jax.value_and_grad(total, has_aux=True))(levels)
  return np.asarray(per_level), np.asarray(grads)


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    "labels,margin",
    [
        (np.repeat(np.arange(4), 3), 1.0),  # P=4 items x K=3 images
        (np.array([3, 0, 3, 1, 0, 2, 2, 3, 1, 4, 0, 3]), 1.5),  # uneven, unsorted, one singleton
    ],
)
def test_per_level_is_the_released_layer_forward_and_backward(labels, margin):
  levels = _unit(np.random.default_rng(0).normal(size=(12, 3, 4)))
  want_values, want_grads = _released(levels, labels, margin)
  values, grads = _ours(levels, labels, margin)
  np.testing.assert_allclose(values, want_values, rtol=1e-5)
  np.testing.assert_allclose(grads, want_grads, rtol=1e-4, atol=1e-6)


def test_every_negative_beyond_the_margin_gives_one_loss_at_every_level():
  """Only positives have a loss, and the layer keeps all of them at every level."""
  labels = np.repeat(np.arange(4), 3)
  x = np.eye(8)[labels] + 0.15 * np.random.default_rng(0).normal(size=(12, 8))
  levels = np.repeat(_unit(x)[:, None], 3, axis=1)  # the same embedding at every level
  e = levels[:, 0].astype(np.float64)
  d = ((e[:, None] - e[None]) ** 2).sum(-1)
  assert d[labels[:, None] != labels[None]].min() > 1.0
  want, want_grads = _released(levels, labels)
  np.testing.assert_allclose(want, want[0])
  values, grads = _ours(levels, labels)
  np.testing.assert_allclose(values, want, rtol=1e-5)
  np.testing.assert_allclose(grads, want_grads, rtol=1e-4, atol=1e-6)
