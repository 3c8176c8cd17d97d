"""The evaluation loop: run a FashionNet over a split, score it with the paper's protocols.

`category_attribute`: category top-k and attribute top-k recall (overall and per
type); every dataset with landmarks: normalised error per landmark; `inshop`: the
query split against the gallery split; `consumer2shop`: the split's consumer
images against its shop images. Retrieval runs on the accelerator
(`retrieval_search`). Results go to the metric writer and to `workdir/eval/`
(JSON, a Markdown table beside the paper's numbers, PNG plots).
"""
from __future__ import annotations

import jax
import numpy as np
from absl import logging

from fashionnet_jax import evaluate, input_pipeline, labels, report
from fashionnet_jax.config_checks import dataset_builder_config
from fashionnet_jax.data import transforms
from fashionnet_jax.train_step import merge_model

_OUTPUT_KEYS = ("landmarks", "visibility_logits", "category_logits", "attribute_logits",
                "embedding")
_LABEL_KEYS = ("landmarks", "landmark_visibility", "category", "attributes", "item", "source",
               "crop")


def make_predict_fn(graphdef, state_shardings, batch_sharding, out_sharding):
  """Jitted eval-mode forward pass of the split model."""

  def predict(params, model_state, images):
    model = merge_model(graphdef, params, model_state)
    return model(transforms.normalize_on_device(images), train=False)

  return jax.jit(predict, in_shardings=(state_shardings.params, state_shardings.model_state,
                                        batch_sharding), out_shardings=out_sharding)


def _gather(x):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def collect(config, trainer, split: str) -> dict[str, np.ndarray]:
  """Network outputs and labels for every example of `split`, in order."""
  predict = trainer.predict_fn
  acc = evaluate.MetricAccumulator()
  for host_batch in input_pipeline.create_eval_iterator(config, split):
    batch = input_pipeline.make_global_batch(host_batch, trainer.mesh)
    out = predict(trainer.state.params, trainer.state.model_state, batch["image"])
    rows = {f"pred_{k}": _gather(out[k]) for k in _OUTPUT_KEYS}
    rows.update({k: _gather(batch[k]) for k in _LABEL_KEYS if k in batch})
    acc.update(mask=_gather(batch["mask"]), **rows)
  return acc.arrays()


def to_image_coordinates(landmarks, crop):
  """Landmarks normalised to the network input -> normalised to the released image."""
  x0, y0, x1, y1 = (crop[:, i, None] for i in range(4))
  return np.stack([x0 + landmarks[..., 0] * (x1 - x0), y0 + landmarks[..., 1] * (y1 - y0)], -1)


def _has_landmarks(arrays) -> bool:
  return "landmark_visibility" in arrays and bool(np.any(arrays["landmark_visibility"] == 0))


def compute_metrics(config, trainer, split=None) -> dict[str, float]:
  builder_config = dataset_builder_config(config)
  split = split or config.dataset.eval_split
  metrics: dict[str, float] = {}
  if builder_config == "inshop":
    query = collect(config, trainer, "query")
    gallery = collect(config, trainer, "gallery")
    metrics.update(evaluate.retrieval_metrics(
        query["pred_embedding"], query["item"], gallery["pred_embedding"], gallery["item"],
        mesh=trainer.mesh))
    arrays = query
  else:
    arrays = collect(config, trainer, split)
    if builder_config == "consumer2shop":
      consumer = arrays["source"] == 1
      metrics.update(evaluate.retrieval_metrics(
          arrays["pred_embedding"][consumer], arrays["item"][consumer],
          arrays["pred_embedding"][~consumer], arrays["item"][~consumer], mesh=trainer.mesh))
  if builder_config == "category_attribute":
    metrics.update(evaluate.category_metrics(arrays["pred_category_logits"], arrays["category"]))
    types = labels.dataset_labels(config)["attribute_types"] or None
    metrics.update(evaluate.attribute_metrics(
        arrays["pred_attribute_logits"], arrays["attributes"], attribute_types=types))
  if _has_landmarks(arrays):
    # NE is measured in the released image's normalised coordinates, not the crop's.
    metrics.update(evaluate.landmark_metrics(
        to_image_coordinates(arrays["pred_landmarks"], arrays["crop"]),
        to_image_coordinates(arrays["landmarks"], arrays["crop"]),
        arrays["landmark_visibility"]))
  metrics["num_examples"] = float(len(arrays["pred_embedding"]))
  return metrics


def evaluate_and_report(config, trainer, writer, step: int) -> dict[str, float]:
  builder_config = dataset_builder_config(config)
  split = "query" if builder_config == "inshop" else config.dataset.eval_split
  metrics = compute_metrics(config, trainer)
  writer.write_scalars(step, {f"eval/{k}": v for k, v in metrics.items()
                              if np.isfinite(v)})
  if jax.process_index() == 0:
    report.write_report(metrics, trainer.workdir, step=step, split=split,
                        dataset=builder_config)
  logging.info("eval step %d: %s", step,
               ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
  return metrics


def evaluate_checkpoint(config, workdir) -> dict[str, float]:
  """--mode=evaluate: restore the latest checkpoint of workdir and evaluate it."""
  from clu import metric_writers

  from fashionnet_jax.checkpointing import Checkpointer
  from fashionnet_jax.data_setup import ensure_dataset
  from fashionnet_jax.sharding import ConfigError
  from fashionnet_jax.train import Trainer

  ensure_dataset(config)
  trainer = Trainer(config, workdir)
  ckpt = Checkpointer(trainer.workdir, every_steps=0, keep=config.keep_checkpoints)
  step = ckpt.latest_step()
  if step is None:
    raise ConfigError(f"no checkpoint in {trainer.workdir / 'checkpoints'} to evaluate")
  trainer.state = ckpt.restore_state_only(trainer.abstract_state(), step)
  ckpt.close()
  writer = metric_writers.create_default_writer(
      str(trainer.workdir), just_logging=jax.process_index() > 0)
  return evaluate_and_report(config, trainer, writer, int(step))
