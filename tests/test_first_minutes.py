"""The first ten minutes (issue 23): progress, a quiet start, data labels, the README's
numbers kept true, and --help that explains every option."""

import concurrent.futures
import importlib.util
import io
import json
import logging
import os
import pathlib
import re
import subprocess
import sys

import ml_collections
import pytest

from fashionnet_jax import console, demo
from fashionnet_jax.data.prepare import SYNTHETIC, trained_on
from fashionnet_jax.evaluation import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECORD = ROOT / demo.RECORD_FILE


# ------------------------------------------------------------------ progress


def test_progress_is_one_concise_line_per_log_step_off_a_terminal():
  out = io.StringIO()
  progress = console.Progress(total=100, start=0, batch_size=32, every=25, stream=out)
  for step in range(1, 101):
    progress.update(step, 1.0 / step if step % 25 == 0 else None)
  progress.close()
  lines = out.getvalue().splitlines()
  assert len(lines) == 4
  assert lines[0].startswith("step 25/100  loss 0.0400  ")
  assert re.fullmatch(r"step 50/100  loss 0\.0200  [\d.]+ img/s  \d+ s left", lines[1])
  assert lines[-1].startswith("step 100/100  loss 0.0100  ") and lines[-1].endswith("0 s left")


def test_progress_is_a_bar_on_a_terminal():
  out = io.StringIO()
  progress = console.Progress(total=10, start=2, batch_size=4, every=5, stream=out, terminal=True)
  for step in range(3, 11):
    progress.update(step, 0.5 if step % 5 == 0 else None)
  progress.close()
  text = out.getvalue()
  assert "training" in text and "10/10" in text and "loss 0.5000" in text
  assert "step 5/10" not in text  # no log lines beside the bar


# ------------------------------------------------------------------ quiet start-up


def test_tensorflow_info_lines_are_off_unless_verbose(monkeypatch):
  monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
  monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
  console._quiet_environment()
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
  console.set_verbose(True)
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" and console.verbose()
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # the user's own setting wins
  console.set_verbose(True)
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def _read_only_warnings(tmp_path, caplog):
  from fashionnet_jax.training.checkpointing import Checkpointer

  (tmp_path / "checkpoints").mkdir(exist_ok=True)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    Checkpointer(tmp_path, every_steps=0, keep=2, read_only=True).close()
  return [
      r.getMessage()
      for r in caplog.records
      if "read_only" in r.getMessage() or "read only" in r.getMessage()
  ]


def test_orbax_read_only_warnings_are_filtered_unless_verbose(tmp_path, caplog, monkeypatch):
  monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
  assert _read_only_warnings(tmp_path, caplog) == []
  monkeypatch.setenv(console.VERBOSE_ENV, "1")
  assert _read_only_warnings(tmp_path, caplog)  # the filter drops real messages


def test_a_local_tfds_build_is_quiet_and_restores_what_it_changed(monkeypatch, capsys):
  from absl import logging as absl_logging
  from tensorflow_datasets.core.utils import tqdm_utils

  monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
  level = absl_logging.get_verbosity()
  with console.quiet_tfds():
    print("Downloading and preparing dataset Unknown size")
    assert tqdm_utils._active is False
    assert absl_logging.get_verbosity() <= absl_logging.WARNING
  assert capsys.readouterr().out == ""
  assert tqdm_utils._active is True and absl_logging.get_verbosity() == level


# ------------------------------------------------------------------ what a model was trained on


def _config(data_dir):
  return ml_collections.ConfigDict(
      {
          "dataset": {
              "name": "deepfashion/category_attribute",
              "data_dir": str(data_dir),
              "synthetic_if_missing": True,
          }
      }
  )


def test_trained_on_is_synthetic_only_where_the_synthetic_tree_was_built(tmp_path):
  config = _config(tmp_path)
  assert trained_on(config) == "DeepFashion category_attribute"
  (tmp_path / "synthetic_deepfashion" / "Category and Attribute Prediction Benchmark").mkdir(
      parents=True
  )
  assert trained_on(config) == SYNTHETIC


def test_a_synthetic_report_is_labelled_and_leaves_the_paper_out(tmp_path):
  metrics = {"category_top3": 0.9, "landmark_ne": 0.05}
  real = report.write_report(
      metrics,
      tmp_path / "real",
      1,
      "test",
      "category_attribute",
      trained_on="DeepFashion category_attribute",
  )
  assert "82.58" in real["markdown"].read_text()  # the published column is there for real data
  written = report.write_report(
      metrics, tmp_path / "synthetic", 1, "test", "category_attribute", trained_on=SYNTHETIC
  )
  md = written["markdown"].read_text()
  assert SYNTHETIC in md and "not comparable" in md
  assert "82.58" not in md and "FashionNet (published)" not in md
  assert "| category_top3 | 90.00 |" in md
  assert json.loads(written["json"].read_text())["trained_on"] == SYNTHETIC


def test_predict_records_say_what_the_model_was_trained_on(run_dir, real_photos):
  from fashionnet_jax import predict

  out, err = io.StringIO(), io.StringIO()
  status = predict.run(["--workdir", str(run_dir / "workdir"), str(real_photos[0])], out, err)
  assert status == 0, err.getvalue()
  assert json.loads(out.getvalue().splitlines()[0])["trained_on"] == SYNTHETIC
  assert err.getvalue().count(f"trained on {SYNTHETIC}") == 1
  labels = json.loads((run_dir / "workdir" / "labels.json").read_text())
  assert labels["trained_on"] == SYNTHETIC


# ------------------------------------------------------------------ the README's numbers


def _load_config(name):
  """get_config() of a config file named as the record names it (configs/default.py)."""
  spec = importlib.util.spec_from_file_location(
      f"_demo_config_{pathlib.Path(name).stem}", ROOT / name
  )
  module = importlib.util.module_from_spec(spec)
  sys.path.insert(0, str(ROOT))
  try:
    spec.loader.exec_module(module)
  finally:
    sys.path.remove(str(ROOT))
  return module.get_config()


def _entries():
  return json.loads(RECORD.read_text())["demos"]


def test_the_record_holds_both_demos():
  assert set(_entries()) == {"configs/default.py", "configs/inshop.py"}


@pytest.mark.parametrize("name", ["configs/default.py", "configs/inshop.py"])
def test_the_demo_is_what_its_numbers_were_measured_on(name):
  entry = _entries()[name]
  assert demo.fingerprint(_load_config(name)) == entry["fingerprint"], (
      f"{name}: the demo's config, synthetic data or step count changed since "
      f"{demo.RECORD_FILE} was measured (commit {entry['commit']}): rerun `python -m "
      f"fashionnet_jax.demo --config={name} --record={demo.RECORD_FILE} --workdir=NEW_FOLDER` "
      "and put its table in README.md"
  )


def test_the_fingerprint_follows_config_steps_and_seed_but_not_paths():
  config = _load_config("configs/default.py")
  base = demo.fingerprint(config)
  moved = ml_collections.ConfigDict(config.to_dict())
  moved.dataset.data_dir = "/elsewhere"
  assert demo.fingerprint(moved) == base
  longer = ml_collections.ConfigDict(config.to_dict())
  longer.stages[0].steps += 1
  assert demo.fingerprint(longer) != base
  reseeded = ml_collections.ConfigDict(config.to_dict())
  reseeded.seed = 1
  assert demo.fingerprint(reseeded) != base


@pytest.mark.parametrize("name", ["configs/default.py", "configs/inshop.py"])
def test_the_readme_shows_the_recorded_numbers(name):
  entry = _entries()[name]
  assert entry[
      "trained"
  ], f"{demo.RECORD_FILE}: {name} not measured yet (run the demo with --record)"
  readme = (ROOT / "README.md").read_text()
  expected = demo.readme_table(entry)
  assert expected in readme, f"README.md should show, for {name}:\n{expected}"
  assert demo.caption(entry) in readme, f"README.md should say:\n{demo.caption(entry)}"


def test_the_demo_table_is_the_readme_format():
  untrained = {"category_top1": 0.0111, "landmark_ne": 0.34}
  trained = {"category_top1": 0.8, "landmark_ne": 0.0466, "retrieval_top1": None, "split": "test"}
  assert demo.table(untrained, trained) == "\n".join(
      [
          "| metric (synthetic test split) | untrained | trained |",
          "|---|---|---|",
          "| category top-1 (chance 0.02) | 0.011 | 0.800 |",
          "| landmark NE (lower is better) | 0.340 | 0.047 |",
      ]
  )


# ------------------------------------------------------------------ --help


COMMANDS = (
    "main",
    "demo",
    "predict",
    "retrieve index",
    "retrieve query",
    "weights",
    "reproduce",
    "synthetic",
    "study",
    "serve",
    "export",
)


def _help(command):
  module, *sub = command.split()
  r = subprocess.run(
      [sys.executable, "-m", f"fashionnet_jax.{module}", *sub, "--help"],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=120,
  )
  return r.stdout + r.stderr


def _options(text):
  """{option: its help text} of an argparse or absl --help."""
  found = {}
  if "options:" in text:  # argparse: `  --name VALUE   help`, help wrapped under it
    section = text.split("options:", 1)[1]
    for entry in re.split(r"\n(?=  -)", "\n" + section):
      head, _, rest = entry.strip("\n").partition("\n")
      name = re.match(r"\s*(-[-\w]+)", head)
      if name:
        inline = re.split(r"\s{2,}", head.strip(), maxsplit=1)
        found[name.group(1)] = ((inline[1] if len(inline) > 1 else "") + " " + rest).strip()
  else:  # absl: `  --name: help`
    for name, help_text in re.findall(r"^  --(?:\[no\])?(\w+): ?(.*)$", text, re.M):
      found[f"--{name}"] = help_text.strip()
  return found


def test_every_option_of_every_command_has_help_text():
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    texts = dict(zip(COMMANDS, pool.map(_help, COMMANDS)))
  for command, text in texts.items():
    options = _options(text)
    assert len(options) >= 2, f"{command}: no options read from its --help:\n{text}"
    missing = [o for o, h in options.items() if not h and o not in ("-h",)]
    assert not missing, f"{command} --help: no help text for {missing}"
  assert "TCP port" in _options(texts["serve"])["--port"]
  assert "(default: 8000)" in _options(texts["serve"])["--port"]


def test_argparse_help_shows_each_default_once():
  from fashionnet_jax.serve.__main__ import build_parser

  text = build_parser().format_help()
  assert "--port PORT" in text and "(default: 8000)" in text
  assert "(default 16)" in text and "(default 16) (default" not in text  # said once
  assert "(default: None)" not in text and "(default: False)" not in text
