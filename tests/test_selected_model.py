"""One model per run: every reader loads the step chosen on validation (issue 21, item 1).

A tiny run selects on a metric that never improves after the first validation
(`num_examples`, constant), so the selected step (2) is not the final one (4), and
keep_checkpoints=1 prunes it from checkpoints/: only best/ holds it.
"""

import json

import jax
import numpy as np
import pytest
from flax import traverse_util

from tiny import tiny_config

pytestmark = pytest.mark.slow  # a run with validation selection: ~2 min on 2 cores


def _leaves(params):
  return traverse_util.flatten_dict(jax.device_get(params))


def _assert_same(a, b):
  a, b = _leaves(a), _leaves(b)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


def _restore(path):
  import orbax.checkpoint as ocp

  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(path / "state")


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory):
  from fashionnet_jax import train

  root = tmp_path_factory.mktemp("selected")
  config = tiny_config(
      **{
          "dataset.data_dir": str(root / "data"),
          "dataset.synthetic_images": 60,
          "model.num_attributes": 1000,
          "loss.attribute_weighting": True,
          "select_metric": "num_examples",
          "eval_every_steps": 2,
          "checkpoint_every_steps": 2,
          "keep_checkpoints": 1,
      }
  )
  results = train.train_and_evaluate(config, root / "workdir")
  return config, root / "workdir", results


def test_run_reports_an_earlier_step_than_its_newest_checkpoint(selected_run):
  _, workdir, results = selected_run
  assert results["selected_step"] == 2
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]
  assert sorted(p.name for p in (workdir / "best").iterdir() if p.name.isdigit()) == ["2"]
  assert json.loads((workdir / "eval" / "2.json").read_text())["selected_step"] == 2


def test_predictor_loads_the_selected_step_by_default(selected_run):
  from fashionnet_jax.inference.predictor import Predictor

  _, workdir, _ = selected_run
  predictor = Predictor(workdir=workdir)
  assert predictor.step == 2 and predictor.selection["metric"] == "num_examples"
  assert "best/2" in predictor.describe() and "chosen on validation" in predictor.describe()
  _assert_same(predictor.params, _restore(workdir / "best" / "2")["params"])


def test_checkpoint_names_any_step_best_included(selected_run):
  from fashionnet_jax.inference.predictor import CheckpointNotFoundError, Predictor

  _, workdir, _ = selected_run
  best = Predictor(checkpoint=workdir / "best" / "2")
  assert best.step == 2
  _assert_same(best.params, _restore(workdir / "best" / "2")["params"])
  newest = Predictor(checkpoint=workdir / "checkpoints" / "4")
  assert newest.step == 4 and newest.selection is None
  _assert_same(newest.params, _restore(workdir / "checkpoints" / "4")["params"])
  with pytest.raises(CheckpointNotFoundError, match="no such checkpoint"):
    Predictor(checkpoint=workdir / "checkpoints" / "2")  # pruned; best/2 holds it
  with pytest.raises(CheckpointNotFoundError, match="not a checkpoint step folder"):
    Predictor(checkpoint=workdir / "eval" / "2")


def test_init_from_run_copies_the_selected_step(selected_run, tmp_path):
  from fashionnet_jax.training.train_setup import TrainSetup

  config, workdir, _ = selected_run
  finetune = tiny_config(
      **{
          "dataset.data_dir": config.dataset.data_dir,
          "model.num_attributes": 1000,
          "init_from": str(workdir),
      }
  )
  trainer = TrainSetup(finetune, tmp_path / "finetune", devices=jax.devices()[:1])
  _assert_same(trainer.state.params, _restore(workdir / "best" / "2")["params"])


def test_mode_evaluate_reproduces_the_runs_own_test_numbers(selected_run, tmp_path):
  from fashionnet_jax import train

  config, workdir, results = selected_run
  again = train.evaluate_checkpoint(config, workdir, out_dir=tmp_path / "again")
  written = json.loads((tmp_path / "again" / "eval" / "2.json").read_text())
  own = json.loads((workdir / "eval" / "2.json").read_text())
  assert written["selected_step"] == own["selected_step"] == 2
  assert again.keys() == results.keys()
  for key, value in results.items():
    if isinstance(value, str):
      assert again[key] == value, key
    else:
      assert again[key] == pytest.approx(value, rel=1e-6, abs=1e-7, nan_ok=True), key


def test_a_retrieval_index_of_the_run_queries_with_the_selected_step(selected_run, tmp_path):
  import io

  from PIL import Image

  from fashionnet_jax import retrieve

  _, workdir, _ = selected_run
  gallery = tmp_path / "gallery"
  gallery.mkdir()
  rng = np.random.default_rng(0)
  for i in range(3):
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), np.uint8)).save(gallery / f"{i}.png")
  out, err = io.StringIO(), io.StringIO()
  assert (
      retrieve.run(
          [
              "index",
              "--workdir",
              str(workdir),
              "--images",
              str(gallery),
              "--out",
              str(tmp_path / "index"),
          ],
          stdout=out,
          stderr=err,
      )
      == 0
  ), err.getvalue()
  model = json.loads((tmp_path / "index" / "meta.json").read_text())["model"]
  assert model["step"] == 2 and model["checkpoint"].endswith("best/2")
  # With no --workdir, query loads the index's own model: best/2 (checkpoints/2 is pruned).
  out, err = io.StringIO(), io.StringIO()
  assert (
      retrieve.run(
          ["query", "--index", str(tmp_path / "index"), str(gallery / "0.png"), "--k", "1"],
          stdout=out,
          stderr=err,
      )
      == 0
  ), err.getvalue()
  assert json.loads(out.getvalue().splitlines()[0])["results"][0]["path"] == "0.png"
  assert "may not be comparable" not in err.getvalue()
