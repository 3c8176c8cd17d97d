"""main end to end on synthetic data: resume after SIGTERM/SIGKILL, two processes, errors.

Each test runs `python -m fashionnet_jax.main` in subprocesses, as a user would.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "tests/tiny_train_config.py"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """Synthetic DeepFashion category_attribute, generated and built once."""
  sys.path.insert(0, str(ROOT / "tests"))
  import tiny_train_config
  from fashionnet_jax.data.prepare import ensure_dataset
  config = tiny_train_config.get_config()
  config.dataset.data_dir = str(tmp_path_factory.mktemp("tfds"))
  ensure_dataset(config)
  return config.dataset.data_dir


def _main(workdir, data_dir, *flags, env=None):
  cmd = [sys.executable, "-m", "fashionnet_jax.main", f"--config={CONFIG}",
         f"--workdir={workdir}", f"--config.dataset.data_dir={data_dir}", *flags]
  return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, **(env or {})})


def _finish(proc, timeout=300):
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, out[-3000:]
  return out


def _fingerprints(log):
  return re.findall(r"process (\d+): final parameter fingerprint (\w+)", log)


def _wait_for_checkpoint(workdir, proc, after=-1, timeout=240):
  deadline = time.time() + timeout
  ckpt = Path(workdir) / "checkpoints"
  while time.time() < deadline:
    steps = [int(p.name) for p in ckpt.glob("*") if p.name.isdigit()] if ckpt.exists() else []
    if steps and max(steps) > after:
      return max(steps)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    time.sleep(0.05)
  raise TimeoutError("no checkpoint appeared")


def _final_params(workdir):
  from fashionnet_jax.inference.predictor import Predictor
  import jax
  return jax.tree.leaves(jax.device_get(Predictor(workdir=workdir).params))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  """An uninterrupted run: (workdir, its log)."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  return workdir, _finish(_main(workdir, data_dir))


def test_sigterm_then_sigkill_then_resume_matches_uninterrupted(tmp_path, data_dir, trained):
  reference_dir, reference = trained
  (_, want), = _fingerprints(reference)

  # Preemption: SIGTERM saves a checkpoint and exits cleanly before the end.
  proc = _main(tmp_path / "b", data_dir)
  _wait_for_checkpoint(tmp_path / "b", proc)
  proc.send_signal(signal.SIGTERM)
  out = _finish(proc)
  assert "SIGTERM received" in out and not _fingerprints(out)
  preempted_at = _wait_for_checkpoint(tmp_path / "b", proc)
  assert preempted_at < 24

  # A hard kill of the restarted run once it has trained and saved further.
  proc = _main(tmp_path / "b", data_dir)
  assert _wait_for_checkpoint(tmp_path / "b", proc, after=preempted_at) < 24
  proc.kill()
  proc.wait()

  out = _finish(_main(tmp_path / "b", data_dir))
  assert "Resumed from step" in out
  (_, got), = _fingerprints(out)
  assert got == want
  for a, b in zip(_final_params(reference_dir), _final_params(tmp_path / "b")):
    np.testing.assert_array_equal(a, b)  # bitwise on CPU


def test_evaluate_mode_writes_json_table_and_plots(trained, data_dir):
  workdir, _ = trained
  for f in (workdir / "eval").glob("*"):
    f.unlink()
  out = _finish(_main(workdir, data_dir, "--mode=evaluate"))
  assert "Traceback" not in out
  result = json.loads((workdir / "eval" / "24.json").read_text())
  assert result["step"] == 24 and result["split"] == "test"
  for key in ("category_top1", "category_top3", "attribute_top5_recall",
              "attribute_top5_recall_texture", "landmark_ne", "landmark_ne_left_collar"):
    assert 0.0 <= result[key] <= 1.0, key
  table = (workdir / "eval" / "24.md").read_text()
  assert "82.58" in table  # the paper's category top-3 beside ours
  assert list((workdir / "eval").glob("*.png"))


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_train_with_identical_parameters(tmp_path, data_dir):
  address = f"localhost:{_free_port()}"
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
  procs = [_main(tmp_path / "mp", data_dir, f"--coordinator_address={address}",
                 "--num_processes=2", f"--process_id={i}", env=env) for i in range(2)]
  logs = [_finish(p, timeout=400) for p in procs]
  prints = dict(fp for log in logs for fp in _fingerprints(log))
  assert set(prints) == {"0", "1"}, logs[0][-2000:]
  assert prints["0"] == prints["1"]
  assert (tmp_path / "mp" / "eval" / "24.json").exists()


def test_config_mistake_is_one_line_without_traceback(tmp_path, data_dir):
  proc = _main(tmp_path / "bad", data_dir, "--config.model.backbone=vgg19")
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 2
  assert "error: config.model.backbone='vgg19': unknown, use one of vgg16, resnet50" in out
  assert "Traceback" not in out


def _restore_params(path):
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(Path(path) / "state")["params"]


def test_model_selection_on_validation_then_one_test_evaluation(tmp_path, data_dir):
  workdir = tmp_path / "select"
  out = _finish(_main(workdir, data_dir, "--config.select_metric=category_top1",
                      "--config.eval_every_steps=4", "--config.keep_checkpoints=10"))
  assert "Testing the step chosen on validation" in out
  validation = {int(p.stem): json.loads(p.read_text())
                for p in (workdir / "eval" / "validation").glob("*.json")}
  assert sorted(validation) == [4, 8, 12, 16, 20, 24]
  assert {r["split"] for r in validation.values()} == {"validation"}
  scores = [validation[s]["category_top1"] for s in sorted(validation)]
  best = sorted(validation)[int(np.argmax(scores))]  # the first of equal bests
  tests = [json.loads(p.read_text()) for p in (workdir / "eval").glob("*.json")]
  assert len(tests) == 1, tests  # the test split is evaluated once
  (final,) = tests
  assert final["split"] == "test" and final["selected_step"] == best == final["step"]
  # The kept state is the one trained to that step.
  import jax
  kept = jax.tree.leaves(_restore_params(workdir / "best" / str(best)))
  regular = jax.tree.leaves(_restore_params(workdir / "checkpoints" / str(best)))
  assert len(kept) == len(regular) > 0
  for a, b in zip(kept, regular):
    np.testing.assert_array_equal(a, b)


def test_init_from_a_fashionnet_run(trained, tmp_path):
  # Fine-tune from another run: every tensor whose shape fits is copied, the rest
  # (here the attribute head of another size) keeps its initialisation.
  import jax
  from flax import traverse_util
  from fashionnet_jax.inference.predictor import Predictor
  from fashionnet_jax.training.trainer import Trainer
  sys.path.insert(0, str(ROOT / "tests"))
  from tiny import tiny_config
  workdir, _ = trained
  source = traverse_util.flatten_dict(jax.device_get(Predictor(workdir=workdir).params))
  config = tiny_config(init_from=str(workdir))  # 12 attributes; the run has 1000
  trainer = Trainer(config, tmp_path / "finetune", devices=jax.devices()[:1])
  ours = traverse_util.flatten_dict(jax.device_get(trainer.state.params))
  assert ours.keys() == source.keys()
  changed = sorted(k for k in ours if ours[k].shape != source[k].shape)
  assert changed == [("heads", "attributes", "bias"), ("heads", "attributes", "kernel")]
  for k in ours:
    if k not in changed:
      np.testing.assert_array_equal(ours[k], source[k], err_msg=str(k))
