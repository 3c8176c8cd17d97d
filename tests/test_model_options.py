"""The models past the paper through every command: one tiny run with both options
(`model.backbone=xception`, `model.landmark_head=heatmap`) trained and evaluated by `train`,
re-evaluated with the flip test, then `predict`, the server's Service and the SavedModel on the
same photo. (`reproduce --backbone --landmark_head`: tests/test_reproduce.py.)"""

import io
import json

import numpy as np
import pytest
from tiny import tiny_config

import orbax.export  # noqa: F401  (pip install -e '.[serve]')

pytestmark = pytest.mark.slow  # a third tiny training run beside conftest's two


@pytest.fixture(scope="module")
def option_run(tmp_path_factory):
  from fashionnet_jax import train

  root = tmp_path_factory.mktemp("options_run")
  config = tiny_config(
      **{
          "image_size": 64,  # Xception's 'valid' stem wants more than the tiny 32 px
          "model.backbone": "xception",
          "model.landmark_head": "heatmap",
          "dataset.data_dir": str(root / "data"),
          "dataset.synthetic_images": 60,
          "model.num_attributes": 1000,  # what the synthetic data has (as conftest's run)
          "checkpoint_every_steps": 1000,
      }
  )
  results = train.train_and_evaluate(config, root / "workdir")
  return config, root, results


@pytest.fixture(scope="module")
def photo(option_run):
  import serving

  config, root, _ = option_run
  return next((serving.synthetic_photos(root, root, 1)).glob("synthetic_0.jpg"))


def test_train_and_evaluate_record_the_model_and_score_its_landmarks(option_run, tmp_path):
  from fashionnet_jax import train

  config, root, results = option_run
  record = json.loads(max((root / "workdir" / "eval").glob("*.json")).read_text())
  protocol = record["protocol"]
  assert protocol["backbone"] == "xception" and protocol["landmark_head"].startswith("heatmap")
  assert np.isfinite(results["landmark_ne"]) and 0 < results["landmark_ne"] < 1
  config.eval_flip_test = True
  flipped = train.evaluate_checkpoint(config, root / "workdir", out_dir=tmp_path)
  again = json.loads(max((tmp_path / "eval").glob("*.json")).read_text())
  assert again["protocol"]["flip_test"] is True
  # The flip test changes the landmarks only: category scores come from the unmirrored pass.
  assert flipped["category_top1"] == results["category_top1"]
  assert flipped["landmark_ne"] != results["landmark_ne"]


def test_predict_serve_and_export_answer_alike(option_run, photo, tmp_path):
  import tensorflow as tf

  from fashionnet_jax import predict
  from fashionnet_jax.export.__main__ import main as export_main
  from fashionnet_jax.inference.predictor import Predictor
  from fashionnet_jax.serve.service import Service

  _, root, _ = option_run
  workdir = root / "workdir"
  out = io.StringIO()
  assert predict.run(["--workdir", str(workdir), str(photo)], stdout=out) == 0
  predicted = json.loads(out.getvalue().splitlines()[0])

  predictor = Predictor(workdir=workdir)
  service = Service(predictor, max_batch=1).start()
  try:
    loaded = service.load(photo.read_bytes(), photo.name)
    outputs = service.submit(loaded).result(timeout=60)
    served = service.record(outputs, loaded, top_k=5)
  finally:
    service.close()
  assert served["landmarks"] == predicted["landmarks"]
  assert served["category"] == predicted["category"]

  export_main(["--workdir", str(workdir), "--out", str(tmp_path / "1")])
  model = tf.saved_model.load(str(tmp_path / "1"))
  got = model.signatures["serving_default"](image_bytes=tf.constant([photo.read_bytes()]))
  # Pixels within one grey level of PIL's, decoded maps within a fraction of a cell.
  np.testing.assert_allclose(got["landmarks"].numpy()[0], outputs["landmarks"], atol=2e-3)
