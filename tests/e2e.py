"""Helpers for the tests that run `python -m fashionnet_jax.main` as a user would."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "tests/tiny_train_config.py"
TOTAL_STEPS = 24  # tiny_train_config: (6 + 6) steps x 2 rounds


def main_process(workdir, data_dir, *flags, env=None):
  cmd = [
      sys.executable,
      "-m",
      "fashionnet_jax.main",
      f"--config={CONFIG}",
      f"--workdir={workdir}",
      f"--config.dataset.data_dir={data_dir}",
      *flags,
  ]
  return subprocess.Popen(
      cmd,
      cwd=ROOT,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env={**os.environ, **(env or {})},
  )


def finish(proc, timeout=300, returncode=0):
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == returncode, out[-3000:]
  return out


def fingerprints(log):
  return re.findall(r"process (\d+): final parameter fingerprint (\w+)", log)


def checkpoint_steps(workdir):
  folder = Path(workdir) / "checkpoints"
  return (
      sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit()) if folder.exists() else []
  )


def wait_for_checkpoint(workdir, proc, after=-1, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    steps = checkpoint_steps(workdir)
    if steps and max(steps) > after:
      return max(steps)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    time.sleep(0.05)
  raise TimeoutError("no checkpoint appeared")
