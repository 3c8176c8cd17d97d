"""`python -m fashionnet_jax.export`: the SavedModel, loaded by TensorFlow, against the JAX Predictor.

Tolerances: `predict_images` runs the same float32 function (StableHLO inside
the SavedModel): outputs within 1e-5. `serving_default` decodes and resizes in
TF: pixels within 1 level of PIL's (libjpeg's DCT scaling in both), so outputs
within 1e-3 of the Predictor on the same files.
"""

import numpy as np
import pytest

import orbax.export  # noqa: F401,E402  (pip install -e '.[serve]')


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
  from fashionnet_jax.export.__main__ import main

  out = tmp_path_factory.mktemp("savedmodel") / "1"
  main(["--workdir", str(run_dir / "workdir"), "--out", str(out)])
  return out


def test_savedmodel_matches_the_predictor_on_real_photos(exported, run_dir, real_photos):
  import tensorflow as tf

  from fashionnet_jax.export.savedmodel import OUTPUTS, tf_decode_resize
  from fashionnet_jax.inference.images import load_image
  from fashionnet_jax.inference.predictor import Predictor

  predictor = Predictor(workdir=run_dir / "workdir")
  model = tf.saved_model.load(str(exported))
  assert set(model.signatures) == {"serving_default", "predict_images"}
  size = predictor.image_size
  images = np.stack([load_image(p, size).image for p in real_photos])
  expected = predictor.predict_uint8(images)

  got = model.signatures["predict_images"](images=tf.constant(images))
  assert set(got) == set(OUTPUTS)
  for key, value in expected.items():
    np.testing.assert_allclose(got[key].numpy(), value, atol=1e-5, err_msg=key)

  files = [p.read_bytes() for p in real_photos]
  for data, image in zip(files, images):
    decoded = tf_decode_resize(tf.constant(data), size).numpy().astype(int)
    assert np.abs(decoded - image).max() <= 1
  got = model.signatures["serving_default"](image_bytes=tf.constant(files))
  for key, value in expected.items():
    np.testing.assert_allclose(got[key].numpy(), value, atol=1e-3, err_msg=key)
  probabilities = got["category_probabilities"].numpy()
  np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_the_command_refuses_a_bad_workdir_or_out_in_one_line(tmp_path, capsys):
  from fashionnet_jax.export.__main__ import main

  taken = tmp_path / "taken"
  taken.mkdir()
  (taken / "saved_model.pb").write_bytes(b"")
  for argv in (
      ["--workdir", str(tmp_path / "nothing"), "--out", str(tmp_path / "new")],
      ["--workdir", str(tmp_path), "--out", str(taken)],
  ):
    with pytest.raises(SystemExit) as exit_:
      main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_savedmodel_refuses_an_image_over_the_limit_and_takes_an_empty_batch(exported):
  """A 64 M pixel PNG of a few KB refused from its header (50 M, the server's default), in one
  line; a batch of none gives outputs of none (JAX's symbolic batch is at least 1)."""
  import io

  import tensorflow as tf
  from PIL import Image

  from fashionnet_jax.export.savedmodel import OUTPUTS

  model = tf.saved_model.load(str(exported))
  serve = model.signatures["serving_default"]
  bomb = io.BytesIO()
  Image.new("1", (8000, 8000)).save(bomb, "PNG")
  with pytest.raises(
      tf.errors.InvalidArgumentError, match=r"\[over the limit of 50000000 pixels\]"
  ):
    serve(image_bytes=tf.constant([bomb.getvalue()]))
  size = model.signatures["predict_images"].structured_input_signature[1]["images"].shape[1]
  for signature, empty in (
      (serve, {"image_bytes": tf.zeros([0], tf.string)}),
      (model.signatures["predict_images"], {"images": tf.zeros([0, size, size, 3], tf.uint8)}),
  ):
    got = signature(**empty)
    assert set(got) == set(OUTPUTS)
    assert all(value.shape[0] == 0 for value in got.values()), {k: v.shape for k, v in got.items()}
