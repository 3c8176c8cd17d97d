"""The real user's path rehearsed on CPU: the full-size VGG-16 config at 224 px (bf16 trunk,
SGD, dropout) initialised from a torchvision-layout VGG-16 file, on DeepFashion-format
data with real photos (tests/host.py), through train -> validation selection -> test evaluation -> report.

The cheap parts of that path have their own tests; this one catches what only the
whole does (conversion into the full-width model, the float32 heads under a bf16
trunk, the BatchNorm-free VGG at 224 px, the selection of a step on validation).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deepfashion_tiny as tiny

pytestmark = pytest.mark.slow  # the full-size VGG-16 at 224 px: ~5 min on 2 cores

ROOT = Path(__file__).resolve().parents[1]
torch = pytest.importorskip("torch")


def _torchvision_vgg16(path):
  """torchvision.models.vgg16's state_dict with the full 4096-wide classifier."""
  from torch_models import torch_vgg16

  torch.manual_seed(0)
  torch.save(torch_vgg16(fc_dim=4096).state_dict(), path)


def test_full_size_vgg16_from_imagenet_weights_train_select_test_report(tmp_path, real_photos):
  photos = [p.read_bytes() for p in real_photos]
  assert len(photos) == 3
  manual = tmp_path / "manual"
  tiny.write_benchmark(manual, "category_attribute", n=9, photos=photos)
  weights = tmp_path / "vgg16-397923af.pth"
  _torchvision_vgg16(weights)
  workdir = tmp_path / "run"
  env = {
      **os.environ,
      "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
      "JAX_PLATFORMS": "cpu",
  }
  cmd = [
      sys.executable,
      "-m",
      "fashionnet_jax.main",
      "--config=tests/rehearsal_config.py",
      f"--workdir={workdir}",
      f"--config.dataset.manual_dir={manual}",
      f"--config.dataset.data_dir={tmp_path / 'tfds'}",
      f"--config.init_from={weights}",
  ]
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-4000:]
  log = proc.stderr + proc.stdout
  assert "Traceback" not in log
  config = json.loads((workdir / "config.json").read_text())
  assert config["image_size"] == 224 and config["model"]["width_multiplier"] == 1.0
  assert config["model"]["dtype"] == "bfloat16" and config["optimizer"]["name"] == "sgd"
  validation = sorted(int(p.stem) for p in (workdir / "eval" / "validation").glob("*.json"))
  assert validation == [2, 4]
  (final,) = [json.loads(p.read_text()) for p in (workdir / "eval").glob("*.json")]
  assert final["split"] == "test" and final["selected_step"] in (2, 4)
  for key in (
      "category_top3",
      "attribute_top3_recall",
      "attribute_top3_recall_texture",
      "attribute_top3_recall_texture_within_type",
      "landmark_ne",
  ):
    assert key in final
  table = (workdir / "eval" / f"{final['step']}.md").read_text()
  assert "82.58" in table and "_within_type" in table
