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


@pytest.fixture(scope="session")
def inshop(tmp_path_factory):
  """A tiny triplet-trained In-shop run and its gallery/query files.

  ~65 s on 2 cores, nearly all of it setup and compilation: the 104 steps are cheap.
  """
  from fashionnet_jax import train
  root = tmp_path_factory.mktemp("inshop")
  config = tiny_config(**{
      "dataset.data_dir": str(root / "data"), "dataset.synthetic_images": 120,
      "dataset.name": "deepfashion/inshop", "dataset.eval_split": "query",
      "input.sampler": "pk", "input.retrieval_p": 4, "input.retrieval_k": 2, "batch_size": 8,
      "loss.attribute_weighting": False, "eval_at_start": False,
      "checkpoint_every_steps": 1000,
      # SGD at the tiny config's rate collapses the 16-d embedding within 40 steps.
      "optimizer.name": "adamw", "optimizer.learning_rate": 1e-3,
      "stages": [
          default.stage("pose", 4, ("trunk", "pose_branch"), landmark=10.0, visibility=1.0),
          default.stage("retrieval", 100,
                        ("trunk", "local_branch", "global_branch", "fusion", "heads"),
                        landmark=1.0, triplet=1.0)]})
  train.train_and_evaluate(config, root / "workdir")

  benchmark = next((root / "data" / "synthetic_deepfashion").glob("In-shop*"))
  rows = [line.split() for line in
          (benchmark / "Eval" / "list_eval_partition.txt").read_text().splitlines()[2:]]
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
  queries = [(str(benchmark / "Img" / name), item) for name, item, split in rows
             if split == "query"]
  return {"workdir": root / "workdir", "gallery": gallery, "gallery_items": items,
          "queries": queries}


@pytest.fixture(scope="session")
def predictor(inshop):
  from fashionnet_jax.inference.predictor import Predictor
  return Predictor(workdir=inshop["workdir"])


@pytest.fixture(scope="session")
def index(inshop, predictor, tmp_path_factory):
  from fashionnet_jax import retrieve
  out = tmp_path_factory.mktemp("index")
  retrieve.build_index(predictor, str(inshop["gallery"]), str(out), chunk_size=8, batch_size=4,
                       log=io.StringIO())
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


def test_query_ranks_own_item_first_more_often_than_chance(inshop, index, tmp_path):
  from fashionnet_jax import retrieve
  queries = [path for path, _ in inshop["queries"]]
  out = io.StringIO()
  grid = tmp_path / "grid.png"
  code = retrieve.run(["query", "--index", str(index), *queries, "--k", "5", "--grid", str(grid)],
                      out, io.StringIO())
  assert code == 0
  lines = [json.loads(line) for line in out.getvalue().splitlines()]
  assert [line["query"] for line in lines] == queries
  items = inshop["gallery_items"]
  hits = 0
  for line, (_, item) in zip(lines, inshop["queries"]):
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
  out = tmp_path / "resumed"
  save = retrieve._save_chunk

  def save_then_interrupt(*args):
    save(*args)
    raise KeyboardInterrupt

  monkeypatch.setattr(retrieve, "_save_chunk", save_then_interrupt)
  with pytest.raises(KeyboardInterrupt):
    retrieve.build_index(predictor, str(inshop["gallery"]), str(out), chunk_size=8,
                         log=io.StringIO())
  assert len(os.listdir(out / "chunks")) == 1
  assert not json.loads((out / "meta.json").read_text())["complete"]
  with pytest.raises(Exception, match="unfinished"):
    retrieve.Index(str(out))

  monkeypatch.setattr(retrieve, "_save_chunk", save)
  embedded = []
  embed = retrieve.embed_files
  monkeypatch.setattr(retrieve, "embed_files",
                      lambda p, paths, *a, **k: embedded.extend(paths) or embed(p, paths, *a, **k))
  log = io.StringIO()
  retrieve.build_index(predictor, str(inshop["gallery"]), str(out), chunk_size=8, log=log)
  assert "resuming: 1 of" in log.getvalue()
  total = len(inshop["gallery_items"]) + 1  # + the unreadable file
  assert len(embedded) == total - 8
  assert (out / "paths.txt").read_text() == (index / "paths.txt").read_text()
  np.testing.assert_allclose(np.load(out / "embeddings.npy"), np.load(index / "embeddings.npy"),
                             atol=1e-6)


def test_index_refuses_another_model_or_folder(inshop, index, predictor, tmp_path):
  from fashionnet_jax import retrieve
  with pytest.raises(retrieve.UsageError, match="choose a new --out"):
    retrieve.build_index(predictor, str(tmp_path), str(index), log=io.StringIO())


def test_cli_query_subprocess(inshop, index):
  """The installed command: JSON lines, an error line for a bad query, exit 1."""
  query, _ = inshop["queries"][0]
  bad = inshop["gallery"] / "img" / "README.jpg"
  result = subprocess.run(
      [sys.executable, "-m", "fashionnet_jax.retrieve", "query", "--index", str(index), query,
       str(bad), "--k", "3"],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
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
  assert retrieve.run(["index", "--workdir", str(tmp_path), "--images", str(tmp_path),
                       "--out", str(tmp_path / "o")], io.StringIO(), err) == 2
  assert "config.json" in err.getvalue() and err.getvalue().count("\n") == 1
