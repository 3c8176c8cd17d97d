"""`python -m fashionnet_jax.retrieve index/query` on synthetic In-shop."""

import collections
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs import default
from tiny import ROOT, tiny_config

pytestmark = pytest.mark.slow  # a triplet-trained In-shop run: ~1 min on 2 cores


@pytest.fixture(scope="session")
def inshop(tmp_path_factory):
  """A tiny triplet-trained In-shop run and its gallery/query files.

  ~65 s on 2 cores, nearly all of it setup and compilation: the 104 steps are cheap.
  """
  from fashionnet_jax import train

  root = tmp_path_factory.mktemp("inshop")
  config = tiny_config(
      **{
          "dataset.data_dir": str(root / "data"),
          "dataset.synthetic_images": 120,
          "dataset.name": "deepfashion/inshop",
          "dataset.eval_split": "query",
          "input.sampler": "pk",
          "input.retrieval_p": 4,
          "input.retrieval_k": 2,
          "batch_size": 8,
          "loss.attribute_weighting": False,
          "eval_at_start": False,
          "checkpoint_every_steps": 1000,
          # SGD at the tiny config's rate collapses the 16-d embedding within 40 steps.
          "optimizer.name": "adamw",
          "optimizer.learning_rate": 1e-3,
          "stages": [
              default.stage("pose", 4, ("trunk", "pose_branch"), landmark=10.0, visibility=1.0),
              default.stage(
                  "retrieval",
                  100,
                  ("trunk", "local_branch", "global_branch", "fusion", "heads"),
                  landmark=1.0,
                  triplet=1.0,
              ),
          ],
      }
  )
  train.train_and_evaluate(config, root / "workdir")

  benchmark = next((root / "data" / "synthetic_deepfashion").glob("In-shop*"))
  rows = [
      line.split()
      for line in (benchmark / "Eval" / "list_eval_partition.txt").read_text().splitlines()[2:]
  ]
  # The gallery split as a user's folder of images (plus one file that is not an image).
  gallery = root / "gallery"
  items = {}
  for name, item, split in rows:
    if split == "gallery":
      target = gallery / name
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.copy(benchmark / "Img" / name, target)
      items[name] = item
  (gallery / "img" / "README.jpg").write_text("not an image")
  queries = [
      (str(benchmark / "Img" / name), item) for name, item, split in rows if split == "query"
  ]
  return {
      "workdir": root / "workdir",
      "gallery": gallery,
      "gallery_items": items,
      "queries": queries,
      "benchmark": benchmark,
  }


@pytest.fixture(scope="session")
def predictor(inshop):
  from fashionnet_jax.inference.predictor import Predictor

  return Predictor(workdir=inshop["workdir"])


@pytest.fixture(scope="session")
def index(inshop, predictor, tmp_path_factory):
  from fashionnet_jax import retrieve

  out = tmp_path_factory.mktemp("index")
  retrieve.build_index(
      predictor, str(inshop["gallery"]), str(out), chunk_size=8, batch_size=4, log=io.StringIO()
  )
  return out


def test_index_contents(inshop, index):
  meta = json.loads((index / "meta.json").read_text())
  assert meta["complete"] and meta["num_images"] == len(inshop["gallery_items"])
  assert meta["num_skipped"] == 1 and meta["model"]["step"] == 104
  paths = (index / "paths.txt").read_text().splitlines()
  assert sorted(paths) == sorted(inshop["gallery_items"])
  embeddings = np.load(index / "embeddings.npy")
  assert embeddings.shape == (len(paths), 16) and embeddings.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
  skipped = (index / "skipped.txt").read_text().splitlines()
  assert len(skipped) == 1 and skipped[0].startswith("img/README.jpg\t")
  crops = [json.loads(line) for line in (index / "crops.jsonl").read_text().splitlines()]
  assert crops == [{"crop": "whole image", "bbox": None}] * len(paths)


def test_query_ranks_own_item_first_more_often_than_chance(inshop, index, tmp_path):
  from fashionnet_jax import retrieve

  queries = [path for path, _ in inshop["queries"]]
  out = io.StringIO()
  grid = tmp_path / "grid.png"
  code = retrieve.run(
      ["query", "--index", str(index), *queries, "--k", "5", "--grid", str(grid)],
      out,
      io.StringIO(),
  )
  assert code == 0
  lines = [json.loads(line) for line in out.getvalue().splitlines()]
  assert [line["query"] for line in lines] == queries
  items = inshop["gallery_items"]
  hits = 0
  for line, (_, item) in zip(lines, inshop["queries"]):
    assert line["crop"] == "whole image" and line["bbox"] is None
    scores = [r["score"] for r in line["results"]]
    assert [r["rank"] for r in line["results"]] == [1, 2, 3, 4, 5]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1 + 1e-6
    hits += items[line["results"][0]["path"]] == item
  # Chance: a random gallery image is of the query's item with p = n_item / G.
  per_item = collections.Counter(items.values())
  chance = np.mean([per_item[item] / len(items) for _, item in inshop["queries"]])
  top1 = hits / len(lines)
  assert top1 > 2 * chance, (top1, chance)
  assert Image.open(grid).size[1] > 128 * len(queries) / 2


def test_index_resumes_after_interruption(inshop, index, predictor, tmp_path, monkeypatch):
  """Interrupted after its first chunk, a rerun embeds only the rest; same index."""
  from fashionnet_jax import retrieve
  from fashionnet_jax.inference import gallery

  out = tmp_path / "resumed"
  save = gallery._save_chunk

  def save_then_interrupt(*args):
    save(*args)
    raise KeyboardInterrupt

  monkeypatch.setattr(gallery, "_save_chunk", save_then_interrupt)
  with pytest.raises(KeyboardInterrupt):
    retrieve.build_index(
        predictor, str(inshop["gallery"]), str(out), chunk_size=8, log=io.StringIO()
    )
  assert len(os.listdir(out / "chunks")) == 1
  assert not json.loads((out / "meta.json").read_text())["complete"]
  with pytest.raises(Exception, match="unfinished"):
    retrieve.Index(str(out))

  monkeypatch.setattr(gallery, "_save_chunk", save)
  embedded = []
  embed = gallery.embed_files
  monkeypatch.setattr(
      gallery,
      "embed_files",
      lambda p, paths, *a, **k: embedded.extend(paths) or embed(p, paths, *a, **k),
  )
  log = io.StringIO()
  retrieve.build_index(predictor, str(inshop["gallery"]), str(out), chunk_size=8, log=log)
  assert "resuming: 1 of" in log.getvalue()
  total = len(inshop["gallery_items"]) + 1  # + the unreadable file
  assert len(embedded) == total - 8
  assert (out / "paths.txt").read_text() == (index / "paths.txt").read_text()
  np.testing.assert_allclose(
      np.load(out / "embeddings.npy"), np.load(index / "embeddings.npy"), atol=1e-6
  )


def test_index_refuses_another_model_or_folder(inshop, index, predictor, tmp_path):
  from fashionnet_jax import retrieve

  with pytest.raises(retrieve.UsageError, match="choose a new --out"):
    retrieve.build_index(predictor, str(tmp_path), str(index), log=io.StringIO())


def test_cli_query_subprocess(inshop, index):
  """The installed command: JSON lines, an error line for a bad query, exit 1."""
  query, _ = inshop["queries"][0]
  bad = inshop["gallery"] / "img" / "README.jpg"
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "fashionnet_jax.retrieve",
          "query",
          "--index",
          str(index),
          query,
          str(bad),
          "--k",
          "3",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert result.returncode == 1, result.stderr
  [line] = [json.loads(x) for x in result.stdout.splitlines()]
  assert line["query"] == query and len(line["results"]) == 3
  errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
  assert len(errors) == 1 and str(bad) in errors[0] and "Traceback" not in result.stderr


def test_usage_errors(tmp_path):
  from fashionnet_jax import retrieve

  err = io.StringIO()
  assert retrieve.run(["query", "--index", str(tmp_path), "x.jpg"], io.StringIO(), err) == 2
  assert "no meta.json" in err.getvalue() and err.getvalue().count("\n") == 1
  err = io.StringIO()
  assert (
      retrieve.run(
          [
              "index",
              "--workdir",
              str(tmp_path),
              "--images",
              str(tmp_path),
              "--out",
              str(tmp_path / "o"),
          ],
          io.StringIO(),
          err,
      )
      == 2
  )
  assert "config.json" in err.getvalue() and err.getvalue().count("\n") == 1


# Issue 21 item 4: the deployed index embeds gallery images as evaluation does.


def _eval_images(config, split):
  """{image/filename: uint8 image} as the eval pipeline feeds the network (the reference)."""
  from fashionnet_jax.data import pipeline

  config = config.copy_and_resolve_references()
  config.input.normalize_on_device = True  # the batches' images stay uint8
  source = pipeline.open_source(config, split)
  names = [source[i]["image/filename"] for i in range(len(source))]
  names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
  images = [
      image
      for batch in pipeline.create_eval_iterator(config, split, process_index=0, process_count=1)
      for image in batch["image"][batch["mask"]]
  ]
  assert len(images) == len(names)
  return dict(zip(names, images))


@pytest.fixture(scope="session")
def bbox_index(inshop, predictor, tmp_path_factory):
  """The gallery folder indexed with the benchmark's released list_bbox_inshop.txt."""
  from fashionnet_jax import retrieve

  out = tmp_path_factory.mktemp("bbox_index")
  bboxes = inshop["benchmark"] / "Anno" / "list_bbox_inshop.txt"
  err = io.StringIO()
  assert (
      retrieve.run(
          [
              "index",
              "--workdir",
              str(inshop["workdir"]),
              "--images",
              str(inshop["gallery"]),
              "--bboxes",
              str(bboxes),
              "--out",
              str(out),
              "--batch-size",
              "8",
          ],
          io.StringIO(),
          err,
      )
      == 0
  ), err.getvalue()
  assert "cropped by their bbox, 0 whole" in err.getvalue()
  return out, bboxes


def test_bbox_index_embeds_what_evaluation_feeds_the_network(inshop, predictor, bbox_index, index):
  """Pixels: `--bboxes` crops each gallery file exactly as the eval pipeline crops its TFDS
  record (uint8 equal); embeddings: the index's equal the network's on the eval batches."""
  from fashionnet_jax.data import transforms
  from fashionnet_jax.inference.images import crop_margin, load_image
  from fashionnet_jax.inference.index import Index

  index_folder = index
  out, bboxes = bbox_index
  reference = _eval_images(predictor.config, "gallery")
  index = Index(str(out))
  assert sorted(index.paths) == sorted(reference) == sorted(inshop["gallery_items"])
  # The released rows, read by hand: name, clothes_type, pose_type, x_1 y_1 x_2 y_2.
  rows = {
      t[0]: tuple(int(v) for v in t[3:])
      for t in (line.split() for line in bboxes.read_text().splitlines()[2:])
  }
  assert index.crops == [{"crop": "bbox", "bbox": list(rows[p])} for p in index.paths]
  margin = crop_margin(predictor.config)
  for path in index.paths:
    mine = load_image(inshop["gallery"] / path, predictor.image_size, rows[path], margin).image
    np.testing.assert_array_equal(mine, reference[path], err_msg=path)
  expected = predictor(transforms.normalize_batch(np.stack([reference[p] for p in index.paths])))
  expected = expected["embedding"] / np.linalg.norm(expected["embedding"], axis=1, keepdims=True)
  np.testing.assert_allclose(index.embeddings, expected, atol=1e-5)
  # The whole-image index embedded other pixels: the crop is no no-op on this data (its
  # embeddings' difference depends on how much the tiny model has learnt, its pixels' do not).
  whole = Index(str(index_folder))
  assert whole.crops == [{"crop": "whole image", "bbox": None}] * len(whole.paths)
  differ = [
      np.abs(
          load_image(inshop["gallery"] / p, predictor.image_size).image.astype(int) - reference[p]
      ).mean()
      for p in index.paths
  ]
  assert max(differ) > 10 and np.mean(differ) > 2, differ


def test_tfds_index_is_the_bbox_index(inshop, predictor, bbox_index, tmp_path):
  """`--from_tfds gallery` (the eval pipeline, the records' own bboxes) = `--bboxes FILE`."""
  from fashionnet_jax import retrieve
  from fashionnet_jax.inference.index import Index

  err = io.StringIO()
  assert (
      retrieve.run(
          [
              "index",
              "--workdir",
              str(inshop["workdir"]),
              "--from_tfds",
              "gallery",
              "--out",
              str(tmp_path / "tfds"),
              "--chunk-size",
              "16",
          ],
          io.StringIO(),
          err,
      )
      == 0
  ), err.getvalue()
  tfds_index, file_index = Index(str(tmp_path / "tfds")), Index(str(bbox_index[0]))
  assert tfds_index.meta["tfds"]["split"] == "gallery" and tfds_index.absolute("x") is None
  order = [tfds_index.paths.index(p) for p in file_index.paths]
  np.testing.assert_allclose(tfds_index.embeddings[order], file_index.embeddings, atol=1e-5)
  assert [tfds_index.crops[i] for i in order] == file_index.crops


def test_query_bbox_and_its_crop_field(inshop, bbox_index):
  from fashionnet_jax import retrieve

  query, _ = inshop["queries"][0]
  out = io.StringIO()
  assert (
      retrieve.run(
          [
              "query",
              "--index",
              str(bbox_index[0]),
              query,
              query,
              "--k",
              "2",
              "--bbox",
              "2,3,20,30",
              "--bbox",
              "0,0,5000,5000",
          ],
          out,
          io.StringIO(),
      )
      == 0
  )
  first, second = [json.loads(line) for line in out.getvalue().splitlines()]
  assert (first["crop"], first["bbox"]) == ("bbox", [2, 3, 20, 30])
  assert second["crop"] == "bbox" and first["results"] != second["results"]


def _index_with(inshop, tmp_path, text):
  from fashionnet_jax import retrieve

  bboxes = tmp_path / "boxes.txt"
  bboxes.write_text(text)
  err = io.StringIO()
  code = retrieve.run(
      [
          "index",
          "--workdir",
          str(inshop["workdir"]),
          "--images",
          str(inshop["gallery"]),
          "--bboxes",
          str(bboxes),
          "--out",
          str(tmp_path / "out"),
      ],
      io.StringIO(),
      err,
  )
  return code, err.getvalue(), bboxes


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("img/a.jpg 1 2 30 40\nimg/b.jpg 1 2 30\n", 2, "expected 5 columns"),
        ("img/a.jpg 1 2 30 forty\n", 1, "y_2 is not an integer"),
        (
            "# name x1 y1 x2 y2\nimg/a.jpg 1 2 30 40\n\nimg/a.jpg 1 2 30 40\n",
            4,
            "already has a bbox",
        ),
        ("img/a.jpg 50 2 30 40\n", 1, "x_1 > x_2"),
        ("2\nimage_name x_1 y_1 x_2 y_2\nimg/a.jpg 1 2 30 40\n", 1, "count line says 2"),
        ("1\nimage_name x_1 y_1 x_2 y_2\n../a.jpg 1 2 30 40\n", 3, "escapes"),
    ],
)
def test_bad_bbox_file_lines_are_one_line_errors_naming_file_and_line(
    inshop, tmp_path, text, line, message
):
  code, err, bboxes = _index_with(inshop, tmp_path, text)
  assert code == 2 and err.count("\n") == 1, err
  assert f"{bboxes}:{line}: " in err and message in err, err


def test_a_bbox_outside_its_image_is_refused_in_one_line(inshop, tmp_path):
  name = sorted(inshop["gallery_items"])[0]
  code, err, bboxes = _index_with(inshop, tmp_path, f"{name} 5000 5000 5100 5100\n")
  assert code == 2, err
  [line] = [x for x in err.splitlines() if "error:" in x]
  assert f"{bboxes}:1: " in line and name in line and "does not overlap" in line
