"""Per-host sharding and P×K item sampling (index arithmetic only, no I/O).

Every function maps an integer (batch or position) to source indices with a
seed, so the draws are deterministic, independent of worker count, and
resumable from grain's iterator state (which is just a position).
"""

import sys

import numpy as np


def shard_bounds(num_examples, process_index, process_count):
  """Contiguous [start, stop) of this process; sizes differ by at most one."""
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  start = num_examples * process_index // process_count
  stop = num_examples * (process_index + 1) // process_count
  return start, stop


def eval_shard_indices(num_examples, process_index, process_count, host_batch_size):
  """This process's source indices in order, padded with -1.

  Every process gets the same number of full batches (a global batch needs
  all of them), so the pad length is set by the largest shard.
  """
  start, stop = shard_bounds(num_examples, process_index, process_count)
  largest = -(-num_examples // process_count)
  num_batches = max(1, -(-largest // host_batch_size))
  indices = np.full((num_batches * host_batch_size,), -1, np.int64)
  indices[: stop - start] = np.arange(start, stop)
  return indices


class PKBatches:
  """Random-access sequence of P×K batches: P distinct items, K images of each.

  Items are visited in a fresh permutation every item-epoch (n_items // P
  batches); an item with fewer than K images is sampled with replacement.
  Element b is (b, int64 [P·K] source indices), grouped item by item.
  """

  def __init__(self, example_items, example_indices, p, k, seed):
    """
    Args:
      example_items: [N] item key (any int) of each candidate example.
      example_indices: [N] the source index of each of those examples.
      p, k: items per batch and images per item.
      seed: int.
    """
    example_items = np.asarray(example_items)
    example_indices = np.asarray(example_indices, np.int64)
    items, inverse = np.unique(example_items, return_inverse=True)
    if len(items) < p:
      raise ValueError(f"P×K sampling needs at least P={p} items, the shard has {len(items)}")
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(items)))[:-1]
    self.members = np.split(example_indices[order], bounds)
    self.p, self.k, self.seed = p, k, seed
    self.batches_per_epoch = len(items) // p

  def __len__(self):
    return sys.maxsize

  def __getitem__(self, batch_index):
    epoch, j = divmod(int(batch_index), self.batches_per_epoch)
    permutation = np.random.default_rng([self.seed, epoch]).permutation(len(self.members))
    rng = np.random.default_rng([self.seed, epoch, j])
    indices = []
    for item in permutation[j * self.p : (j + 1) * self.p]:
      members = self.members[item]
      indices.append(rng.choice(members, self.k, replace=len(members) < self.k))
    return int(batch_index), np.concatenate(indices)
