"""`python -m fashionnet_jax.study`: presets, budgets, the table, and the smoke study run twice
(the second run reuses both finished variants)."""

import json
import subprocess
import sys

import pytest
from tiny import ROOT

from fashionnet_jax import train
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.study import presets, runner, table


@pytest.mark.slow
def test_smoke_study_trains_both_variants_then_reuses_them(tmp_path, data_dir):
  preset = presets.get_preset("smoke")
  lines = []
  first = runner.run_study(
      preset, tmp_path, train.train_and_evaluate, data_dir=data_dir, log=lines.append
  )
  assert list(first) == ["fashionnet", "no_landmarks"]
  for result in first.values():
    assert result["steps"] == preset.steps and result["wall_s"] > 0
    assert 0 <= result["metrics"]["category_top1"] <= 1
  # The ablation has no landmark branch: nothing of it is scored as landmarks.
  assert "landmark_ne" in first["fashionnet"]["metrics"]
  assert "landmark_ne" not in first["no_landmarks"]["metrics"]
  study_md = (tmp_path / "study.md").read_text()
  assert "| landmark_ne | " in study_md and study_md.split("| landmark_ne | ")[1].split("\n")[
      0
  ].endswith("| n/a |")
  assert "| metric | fashionnet | no_landmarks |" in study_md and "| wall time (s) |" in study_md
  record = json.loads((tmp_path / "study.json").read_text())
  assert set(record["variants"]) == {"fashionnet", "no_landmarks"}
  assert (tmp_path / "study.png").stat().st_size > 1000
  assert (tmp_path / "fashionnet" / "checkpoints").is_dir()  # an ordinary run folder

  def must_not_train(config, workdir):
    raise AssertionError(f"retrained {workdir}")

  again = runner.run_study(preset, tmp_path, must_not_train, data_dir=data_dir, log=lines.append)
  assert again == json.loads(json.dumps(first))
  assert sum("reused" in line for line in lines) == 2


def test_stages_are_rescaled_to_the_budget_in_proportion():
  config = runner.variant_config(
      presets.get_preset("landmarks").variants[0],
      presets.get_preset("landmarks"),
      steps=200,
      seed=3,
      data_dir="/d",
  )
  assert [s.steps for s in config.stages] == [37, 63] and config.num_rounds == 2  # 150:250
  assert config.seed == 3 and config.dataset.data_dir == "/d" and not config.eval_at_start
  with pytest.raises(ConfigError, match="fewer than one step per stage"):
    runner.rescale_stages(config, 3)


@pytest.mark.parametrize("name", [p for p in presets.PRESETS if p != "smoke"])
def test_every_preset_builds_demo_and_full_size_configs(name):
  preset = presets.get_preset(name)
  for variant in preset.variants:
    demo = runner.variant_config(variant, preset, steps=preset.steps, seed=0, data_dir=None)
    assert sum(s.steps for s in demo.stages) * demo.num_rounds == preset.steps
    full = runner.variant_config(
        variant, preset, steps=None, seed=0, data_dir="/tfds", platform="gpu", init_from="scratch"
    )
    assert full.image_size == 224 and full.model.width_multiplier == 1.0
    assert full.model.dtype == "bfloat16" and full.init_from == "scratch"
    assert demo.model.backbone == full.model.backbone
    assert demo.model.use_landmark_branch == full.model.use_landmark_branch
    assert demo.model.get("cascade_levels", ()) == full.model.get("cascade_levels", ())
    assert demo.loss.triplet_mining == full.loss.triplet_mining
    assert full.optimizer.name == "sgd"  # demo-only overrides stay out of full size


def test_table_bolds_the_best_and_lower_is_better_for_ne():
  preset = presets.Preset("t", "q", (), ("category_top1", "landmark_ne", r"retrieval_.+_top1"), 1)
  results = {
      "a": dict(
          steps=1,
          wall_s=2.0,
          metrics=dict(category_top1=0.5, landmark_ne=0.1, retrieval_pool4_top1=0.3),
      ),
      "b": dict(steps=1, wall_s=3.0, metrics=dict(category_top1=0.7, landmark_ne=0.2)),
  }
  text = table.markdown(preset, results)
  assert "| category_top1 | 0.5000 | **0.7000** |" in text
  assert "| landmark_ne | **0.1000** | 0.2000 |" in text
  assert "| retrieval_pool4_top1 | 0.3000 | n/a |" in text


def test_unknown_preset_is_one_line_and_exit_2():
  proc = subprocess.run(
      [sys.executable, "-m", "fashionnet_jax.study", "--preset=nope"],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --preset='nope': unknown, use one of landmarks, mining, backbone, "
      "landmark_head, smoke"
  )
