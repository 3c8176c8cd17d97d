"""Attribute recall by where an attribute shows: local (near a landmark), global or shape.

The synthetic data records each drawn attribute's extent (synthetic.vocab.
ATTRIBUTE_EXTENT: a contrast collar, cuff or hem is a patch at its landmarks only;
texture, fabric and colour cover the garment; the rest is the silhouette). The
`landmarks` preset asks whether the landmark branch helps; it should help the
local ones if at all, so the study scores them apart: top-k recall (the paper's
single ranking of all attributes) over each extent's positives, from a finished
run's checkpoint on the config's eval split. Real DeepFashion records no extent:
nothing is added there.
"""

from __future__ import annotations

import numpy as np

from fashionnet_jax.data import pipeline
from fashionnet_jax.evaluation.metrics import MetricAccumulator, attribute_topk_recall
from fashionnet_jax.inference.predictor import Predictor
from fashionnet_jax.synthetic.vocab import attribute_extent

EXTENTS = ("local", "global", "shape")


def recall_by_extent(config, workdir, ks=(3, 5)) -> dict[str, float]:
  """{attribute_top<k>_recall_extent_<extent>: recall}; {} when no attribute has an extent."""
  predictor = Predictor(workdir)
  names = predictor.labels.get("attribute_names", [])
  codes = np.array(
      [EXTENTS.index(e) + 1 if (e := attribute_extent(n)) in EXTENTS else 0 for n in names]
  )
  if not len(codes) or not codes.any():
    return {}
  acc = MetricAccumulator()
  for batch in pipeline.create_eval_iterator(config, config.dataset.eval_split):
    images = np.asarray(batch["image"])
    out = predictor.predict_uint8(images) if images.dtype == np.uint8 else predictor(images)
    acc.update(mask=batch["mask"], scores=out["attribute_logits"], labels=batch["attributes"])
  arrays = acc.arrays()
  out = {}
  for k in ks:
    recall = attribute_topk_recall(arrays["scores"], arrays["labels"], k, attribute_types=codes)
    out.update(
        {
            f"attribute_top{k}_recall_extent_{e}": recall[i + 1]
            for i, e in enumerate(EXTENTS)
            if i + 1 in recall
        }
    )
  return out
