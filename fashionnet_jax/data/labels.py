"""Class names of a prepared dataset: categories, attributes and their types.

Read from the TFDS dataset info (the builder stores the names of
list_category_cloth.txt and list_attr_cloth.txt), and saved beside each run's
checkpoints (`workdir/labels.json`) so that `predict` needs no dataset.
"""

from __future__ import annotations

import json

from etils import epath

from fashionnet_jax.data.prepare import data_dir, dataset_builder_config

LABELS_FILE = "labels.json"


def dataset_labels(config) -> dict:
  """{'categories': [...], 'attribute_names': [...], 'attribute_types': [...]} (may be empty)."""
  import tensorflow_datasets as tfds

  root = data_dir(config) / "deepfashion" / dataset_builder_config(config)
  versions = sorted(p.parent for p in root.glob("*/dataset_info.json"))
  if not versions:
    return {"categories": [], "attribute_names": [], "attribute_types": []}
  info = tfds.builder_from_directory(str(versions[-1])).info
  categories = list(info.features["category"].names) if "category" in info.features else []
  metadata = info.metadata or {}
  return {
      "categories": categories,
      "attribute_names": list(metadata.get("attribute_names", [])),
      "attribute_types": [int(t) for t in metadata.get("attribute_types", [])],
  }


def save(labels: dict, workdir) -> None:
  path = epath.Path(workdir) / LABELS_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(labels, indent=1))


def load(workdir) -> dict:
  path = epath.Path(workdir) / LABELS_FILE
  return json.loads(path.read_text()) if path.exists() else {}
