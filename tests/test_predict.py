"""`python -m fashionnet_jax.predict` on real photos, synthetic photos and bad files."""

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import host
from tiny import ROOT

from fashionnet_jax.inference import describe

ATTRIBUTE_TYPES = {"texture", "fabric", "shape", "part", "style"}
APPLIES = {"upper": {0, 1, 2, 3, 6, 7}, "lower": {4, 5, 6, 7}, "full": set(range(8))}


@pytest.fixture(scope="session")
def predictor(run_dir):
  from fashionnet_jax.inference.predictor import Predictor

  return Predictor(workdir=run_dir / "workdir")


@pytest.fixture(scope="session")
def photos(run_dir, tmp_path_factory):
  """Three synthetic photos (JPEG, as released), a non-image and a truncated JPEG."""
  out = tmp_path_factory.mktemp("photos")
  archive = next((run_dir / "data" / "synthetic_deepfashion").glob("Category*/Img/img.zip"))
  with zipfile.ZipFile(archive) as z:
    members = sorted(n for n in z.namelist() if n.endswith(".jpg"))[:3]
    good = []
    for i, name in enumerate(members):
      path = out / f"synthetic_{i}.jpg"
      path.write_bytes(z.read(name))
      good.append(path)
  not_image = out / "notes.jpg"
  not_image.write_text("this is not a picture\n")
  truncated = out / "cut_short.jpg"  # the name must not say "truncated"
  data = good[0].read_bytes()
  truncated.write_bytes(data[: len(data) // 2])  # header intact, scan cut off
  return {"good": good, "not_image": not_image, "truncated": truncated}


def check_record(record, path, top_k):
  """The documented JSON shape, with values that make sense."""
  assert record["image"] == str(path)
  width, height = Image.open(path).size
  assert (record["width"], record["height"]) == (width, height)
  probs = [c["probability"] for c in record["category"]]
  assert len(probs) == top_k and probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
  assert len(record["attributes"]) == top_k
  for a in record["attributes"]:
    assert a["type"] in ATTRIBUTE_TYPES and 0 <= a["probability"] <= 1
  assert record["clothes_type"] in APPLIES
  marks = record["landmarks"]
  assert [m["name"] for m in marks] == [
      "left_collar",
      "right_collar",
      "left_sleeve",
      "right_sleeve",
      "left_waistline",
      "right_waistline",
      "left_hem",
      "right_hem",
  ]
  assert {i for i, m in enumerate(marks) if m["applies"]} == APPLIES[record["clothes_type"]]
  for m in marks:
    assert m["visible"] == (m["probability_visible"] >= 0.5)
    # Whole image in, so every landmark lies within the image's pixels.
    assert -1 <= m["x"] <= width + 1 and -1 <= m["y"] <= height + 1


def test_cli_predicts_good_files_and_names_bad_ones(run_dir, photos, tmp_path):
  """One subprocess: JSON per good image, one error line per bad file, exit 1, PNGs."""
  inputs = [
      photos["good"][0],
      photos["not_image"],
      photos["good"][1],
      photos["truncated"],
      photos["good"][2],
  ]
  vis = tmp_path / "vis"
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "fashionnet_jax.predict",
          "--workdir",
          str(run_dir / "workdir"),
          *map(str, inputs),
          "--visualize",
          str(vis),
          "--top-k",
          "3",
          "--batch-size",
          "2",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert result.returncode == 1, result.stderr
  records = [json.loads(line) for line in result.stdout.splitlines()]
  assert [r["image"] for r in records] == [str(p) for p in photos["good"]]
  for record, path in zip(records, photos["good"]):
    check_record(record, path, top_k=3)
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 2, result.stderr
  assert str(photos["not_image"]) in errors[0] and str(photos["truncated"]) in errors[1]
  assert "image file is truncated" in errors[1]
  assert "Traceback" not in result.stderr
  for path in photos["good"]:
    drawn = Image.open(vis / f"{path.stem}.png")
    assert drawn.format == "PNG" and drawn.width >= Image.open(path).width


def test_real_photos(predictor, real_photos, tmp_path):
  from fashionnet_jax.inference import visualize

  for path, record, error in describe.predict_files(
      predictor, [str(p) for p in real_photos], top_k=5
  ):
    assert error is None, error
    check_record(record, path, top_k=5)
  # A bbox as list_bbox.txt gives it (the attribute-benchmark sample's, where it is here).
  sample = host.bbox_photo(real_photos)
  [(_, record, error)] = describe.predict_files(predictor, [str(sample)], [host.BBOX])
  assert error is None and record["bbox"] == list(host.BBOX)
  out = tmp_path / "sample.png"
  visualize.draw_prediction(sample, record).save(out)
  assert Image.open(out).size[0] >= 300


def test_landmarks_to_pixels():
  from fashionnet_jax.inference.images import landmarks_to_pixels

  xy = landmarks_to_pixels([[0.5, 0.5], [0.0, 1.0]], crop=(0.1, 0.2, 0.6, 0.7), size=(200, 100))
  np.testing.assert_allclose(xy, [[70.0, 45.0], [20.0, 70.0]], atol=1e-4)


def test_bbox_landmarks_map_back_to_original_pixels(predictor, photos, tmp_path):
  """A photo pasted into a larger canvas, with the bbox that crops exactly it back out,
  gives the same network input: its landmarks must land on the same garment pixels,
  shifted by the paste offset, and the same probabilities."""
  photo = Image.open(photos["good"][0]).convert("RGB").resize((120, 120))
  alone = tmp_path / "alone.png"
  photo.save(alone)
  canvas = Image.new("RGB", (300, 260), (20, 120, 40))
  ox, oy = 70, 50
  canvas.paste(photo, (ox, oy))
  placed = tmp_path / "placed.png"
  canvas.save(placed)
  # Eval crops bbox + 10% margin per side: a 100 px bbox → the 120 px photo.
  bbox = (ox + 10, oy + 10, ox + 110, oy + 110)
  results = list(describe.predict_files(predictor, [str(alone), str(placed)], [None, bbox]))
  (_, whole, e1), (_, boxed, e2) = results
  assert e1 is None and e2 is None
  assert (boxed["width"], boxed["height"]) == (300, 260)
  for a, b in zip(whole["landmarks"], boxed["landmarks"]):
    assert b["x"] == pytest.approx(a["x"] + ox, abs=0.5)
    assert b["y"] == pytest.approx(a["y"] + oy, abs=0.5)
    assert b["probability_visible"] == pytest.approx(a["probability_visible"], abs=1e-3)
  assert boxed["category"][0]["name"] == whole["category"][0]["name"]


def test_bbox_outside_image_is_an_error_for_that_image(predictor, photos):
  path = str(photos["good"][0])
  [(_, record, error)] = describe.predict_files(predictor, [path], [(5000, 5000, 5100, 5100)])
  assert record is None and path in error and "\n" not in error


def test_exif_rotation_is_applied(predictor, photos, tmp_path):
  """A phone photo stored sideways (EXIF orientation 6) is predicted upright."""
  image = Image.open(photos["good"][0]).convert("RGB").resize((160, 100))
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90° clockwise to display
  path = tmp_path / "sideways.jpg"
  image.save(path, exif=exif)
  [(_, record, error)] = describe.predict_files(predictor, [str(path)])
  assert error is None and (record["width"], record["height"]) == (100, 160)


def test_deterministic_and_batch_independent(predictor, photos):
  paths = [str(p) for p in photos["good"]]
  first = [r for _, r, _ in describe.predict_files(predictor, paths, batch_size=4)]
  again = [r for _, r, _ in describe.predict_files(predictor, paths, batch_size=4)]
  assert first == again
  one_by_one = [r for _, r, _ in describe.predict_files(predictor, paths, batch_size=1)]
  for a, b in zip(first, one_by_one):
    assert [c["name"] for c in a["category"]] == [c["name"] for c in b["category"]]
    np.testing.assert_allclose(
        [[m["x"], m["y"]] for m in a["landmarks"]],
        [[m["x"], m["y"]] for m in b["landmarks"]],
        atol=0.05,
    )


def test_clothes_type_follows_the_predicted_category():
  """Types come from list_category_cloth.txt by name, not from the label's position."""
  labels = describe.LabelSpace({"categories": ["Skirt", "Tee", "Dress"]}, 3, 0)
  assert labels.clothes_type(np.array([0.7, 0.2, 0.1])) == 2
  assert labels.clothes_type(np.array([0.1, 0.7, 0.2])) == 1
  assert labels.clothes_type(np.array([0.1, 0.2, 0.7])) == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bbox", "1,2,3", "x.jpg"], "--bbox '1,2,3'"),
        (["--bbox", "10,10,5,20", "x.jpg"], "x1 < x2"),
        (["--bbox", "0,0,1,1", "--bbox", "0,0,2,2", "a.jpg", "b.jpg", "c.jpg"], "2 --bbox for 3"),
    ],
)
def test_usage_errors_are_one_line(run_dir, argv, message):
  from fashionnet_jax import predict

  err = io.StringIO()
  code = predict.run(["--workdir", str(run_dir / "workdir"), *argv], io.StringIO(), err)
  assert code == 2 and message in err.getvalue() and err.getvalue().count("\n") == 1


def test_missing_run_is_a_usage_error(tmp_path):
  from fashionnet_jax import predict

  err = io.StringIO()
  assert predict.run(["--workdir", str(tmp_path / "none"), "x.jpg"], io.StringIO(), err) == 2
  assert "config.json" in err.getvalue() and err.getvalue().count("\n") == 1
  err = io.StringIO()
  assert predict.run(["--checkpoint", str(tmp_path / "ckpt"), "x.jpg"], io.StringIO(), err) == 2
  assert "not a checkpoint step folder" in err.getvalue()


def test_help(capsys):
  from fashionnet_jax import predict

  with pytest.raises(SystemExit) as exit_info:
    predict.build_parser().parse_args(["--help"])
  assert exit_info.value.code == 0 and "--visualize" in capsys.readouterr().out


@pytest.mark.parametrize("overhang", [0, 7])
def test_bbox_crop_is_the_eval_pipelines_crop(predictor, photos, overhang):
  """Issue 21 item 4: a file with its pixel bbox reaches the network exactly as evaluation
  feeds its TFDS record (bbox normalised and clipped by the builder, float32, eval margin),
  also for a bbox that ends past the border as a few released ones do; records say which
  crop they used."""
  from fashionnet_jax.data import annotations as anno
  from fashionnet_jax.data.preprocess import Preprocess
  from fashionnet_jax.inference.images import crop_margin, load_image

  path = photos["good"][1]
  width, height = Image.open(path).size
  box = (width // 3, height // 4, width - 2 + overhang, height - 2 + overhang)
  record = {
      "image": path.read_bytes(),  # what the builder stores: bytes as released ...
      "bbox": np.asarray(anno.normalized_bbox(box, width, height), np.float32),
  }  # ... BBox
  margin = crop_margin(predictor.config)
  expected = Preprocess(predictor.image_size, 12, train=False, crop_margin=margin)(record)
  loaded = load_image(path, predictor.image_size, box, margin)
  np.testing.assert_array_equal(loaded.image, expected["image"])
  np.testing.assert_array_equal(loaded.crop, expected["crop"])
  [(_, boxed, _), (_, whole, _)] = describe.predict_files(predictor, [str(path)] * 2, [box, None])
  assert (boxed["crop"], boxed["bbox"]) == ("bbox", list(box))
  assert (whole["crop"], whole["bbox"]) == ("whole image", None)
