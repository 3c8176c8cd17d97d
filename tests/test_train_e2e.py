"""main end to end on synthetic data: resume after SIGTERM/SIGKILL, two processes, errors.

Each test runs `python -m fashionnet_jax.main` in subprocesses, as a user would.
"""

import json
import re
import signal
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from fashionnet_jax.errors import PREEMPTED_EXIT
from e2e import (
    ROOT,
    fingerprints as _fingerprints,
    finish as _finish,
    main_process as _main,
    wait_for_checkpoint as _wait_for_checkpoint,
)

pytestmark = pytest.mark.slow  # whole `main` runs in subprocesses: ~8 min on 2 cores


def _final_params(workdir):
  from fashionnet_jax.inference.predictor import Predictor
  import jax

  return jax.tree.leaves(jax.device_get(Predictor(workdir=workdir).params))


def test_sigterm_then_sigkill_then_resume_matches_uninterrupted(tmp_path, data_dir, trained):
  reference_dir, reference = trained
  ((_, want),) = _fingerprints(reference)

  # Preemption: SIGTERM saves a checkpoint and exits with the status schedulers requeue on.
  proc = _main(tmp_path / "b", data_dir)
  _wait_for_checkpoint(tmp_path / "b", proc)
  proc.send_signal(signal.SIGTERM)
  out = _finish(proc, returncode=PREEMPTED_EXIT)
  assert "SIGTERM received" in out and not _fingerprints(out)
  assert re.search(r"preempted at step \d+: checkpoint saved", out)
  preempted_at = _wait_for_checkpoint(tmp_path / "b", proc)
  assert preempted_at < 24

  # A hard kill of the restarted run once it has trained and saved further.
  proc = _main(tmp_path / "b", data_dir)
  assert _wait_for_checkpoint(tmp_path / "b", proc, after=preempted_at) < 24
  proc.kill()
  proc.wait()

  out = _finish(_main(tmp_path / "b", data_dir))
  assert "Resumed from step" in out
  ((_, got),) = _fingerprints(out)
  assert got == want
  for a, b in zip(_final_params(reference_dir), _final_params(tmp_path / "b")):
    np.testing.assert_array_equal(a, b)  # bitwise on CPU


def test_evaluate_mode_on_a_read_only_run_writes_json_table_and_plots_elsewhere(
    trained, data_dir, tmp_path
):
  # --mode=evaluate is a reader: it writes nothing into the run, and a run it cannot
  # write into (a read-only mount: EROFS, even for root) sends its evaluation elsewhere.
  import host
  from test_faults import _files, _read_only_mount, _unmount

  workdir = tmp_path / "ro_run"
  mounted = _read_only_mount(workdir, source=trained[0])
  try:
    host.needs(mounted, "mount -t tmpfs failed (needs root): cannot make a read-only run")
    before = _files(workdir)
    out = _finish(_main(workdir, data_dir, "--mode=evaluate"))
    assert "Traceback" not in out
    (out_dir,) = re.findall(r"is read-only: writing the evaluation to (\S+) instead", out)
    assert _files(workdir) == before
  finally:
    _unmount(workdir)
  out_dir = Path(out_dir)
  result = json.loads((out_dir / "eval" / "24.json").read_text())
  assert result["step"] == 24 and result["split"] == "test"
  for key in (
      "category_top1",
      "category_top3",
      "attribute_top5_recall",
      "attribute_top5_recall_texture",
      "landmark_ne",
      "landmark_ne_left_collar",
  ):
    assert 0.0 <= result[key] <= 1.0, key
  assert result == json.loads((trained[0] / "eval" / "24.json").read_text())
  table = (out_dir / "eval" / "24.md").read_text()
  # A synthetic-data run's report says so and sets no published number beside ours.
  assert "synthetic" in table.lower() and "82.58" not in table
  assert list((out_dir / "eval").glob("*.png"))


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_train_with_identical_parameters(tmp_path, data_dir):
  address = f"localhost:{_free_port()}"
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
  procs = [
      _main(
          tmp_path / "mp",
          data_dir,
          f"--coordinator_address={address}",
          "--num_processes=2",
          f"--process_id={i}",
          env=env,
      )
      for i in range(2)
  ]
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
  out = _finish(
      _main(
          workdir,
          data_dir,
          "--config.select_metric=category_top1",
          "--config.eval_every_steps=4",
          "--config.keep_checkpoints=10",
      )
  )
  assert "Testing the step chosen on validation" in out
  validation = {
      int(p.stem): json.loads(p.read_text())
      for p in (workdir / "eval" / "validation").glob("*.json")
  }
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
  from fashionnet_jax.training.train_setup import TrainSetup

  sys.path.insert(0, str(ROOT / "tests"))
  from tiny import tiny_config

  workdir, _ = trained
  source = traverse_util.flatten_dict(jax.device_get(Predictor(workdir=workdir).params))
  config = tiny_config(init_from=str(workdir))  # 12 attributes; the run has 1000
  trainer = TrainSetup(config, tmp_path / "finetune", devices=jax.devices()[:1])
  ours = traverse_util.flatten_dict(jax.device_get(trainer.state.params))
  assert ours.keys() == source.keys()
  changed = sorted(k for k in ours if ours[k].shape != source[k].shape)
  assert changed == [("heads", "attributes", "bias"), ("heads", "attributes", "kernel")]
  for k in ours:
    if k not in changed:
      np.testing.assert_array_equal(ours[k], source[k], err_msg=str(k))
