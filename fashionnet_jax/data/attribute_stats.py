"""Per-attribute positive / negative counts over a split (for the weighted loss).

The paper weights the attribute cross-entropy by w_pos / w_neg from each
attribute's positive/negative ratio in the training set. Counting is one
streaming, vectorised pass (labels 1 / -1 / 0 = positive / negative / unknown).
"""

import numpy as np

from fashionnet_jax.data import metadata


def count_attributes(source, num_attributes):
  """dict(positive_count, negative_count [A] int64, num_examples, positive_ratio [A])."""
  positive = np.zeros((num_attributes,), np.int64)
  negative = np.zeros((num_attributes,), np.int64)
  num_examples = 0
  for chunk in metadata.scan_field(source, "attributes"):
    labels = np.stack(chunk).astype(np.int8)
    if labels.shape[1] != num_attributes:
      raise ValueError(
          f"attributes have {labels.shape[1]} entries, config expects {num_attributes}"
      )
    positive += (labels == 1).sum(axis=0)
    negative += (labels == -1).sum(axis=0)
    num_examples += len(labels)
  return {
      "positive_count": positive,
      "negative_count": negative,
      "num_examples": np.int64(num_examples),
      "positive_ratio": (positive / max(num_examples, 1)).astype(np.float32),
  }
