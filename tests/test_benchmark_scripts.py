"""The GPU benchmark scripts (shellcheck) and the PyTorch reference they compare against."""

import json
import pathlib
import subprocess

import numpy as np
import pytest

import host

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "fashionnet_jax" / "benchmarks"


def test_shellcheck_passes_on_the_benchmark_scripts():
  host.program("shellcheck", "apt-get install shellcheck")
  scripts = sorted(BENCHMARKS.glob("*.sh"))
  assert {p.name for p in scripts} >= {"gpu_run.sh", "gpu_profile.sh"}
  r = subprocess.run(
      ["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True, cwd=ROOT
  )
  assert r.returncode == 0, r.stdout + r.stderr


def test_torch_reference_trains_its_network_on_cpu(tmp_path):
  from fashionnet_jax.benchmarks import torch_reference

  out = tmp_path / "torch.json"
  assert (
      torch_reference.main(
          [
              "--device=cpu",
              "--size=32",
              "--batch=3",
              "--steps=1",
              "--warmup=1",
              "--which=torch",
              f"--out={out}",
          ]
      )
      == 0
  )
  results = json.loads(out.read_text())
  assert results["torch"]["img_s"] > 0 and np.isfinite(results["torch"]["loss"])
  assert results["train_gflop_per_img"] == pytest.approx(
      3 * torch_reference.flops_per_image(32) / 1e9
  )
