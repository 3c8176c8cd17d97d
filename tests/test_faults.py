"""Fault injection: damaged checkpoints, a second process, a changed config, user mistakes.

Each fault a hostile but realistic user met (issue 14) is reproduced here and must
end in one line naming what and where, the documented exit status, and no file of
the run lost. The fast cases run in-process; `main`'s own are subprocesses, as a
user runs them, started together so they overlap.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import e2e
import host
from tiny import tiny_config

from fashionnet_jax.errors import USER_ERROR_EXIT, ConfigError, WorkdirError
from fashionnet_jax.training import workdir as run_workdir
from fashionnet_jax.training.checkpointing import DAMAGED_FOLDER, CheckpointError, Checkpointer
from fashionnet_jax.training.config_checks import validate_config


def _files(folder):
  """{relative path: bytes} of every file under folder."""
  folder = Path(folder)
  return {
      str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
  }


# --- config bounds ------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("optimizer.learning_rate", -0.1, "config.optimizer.learning_rate=-0.1: must be > 0.0"),
        ("keep_checkpoints", 0, "config.keep_checkpoints=0: must be >= 1"),
        ("model.dropout_rate", 1.0, "config.model.dropout_rate=1.0: must be in [0.0, 1.0)"),
        ("model.pooling_window", 4, "config.model.pooling_window=4: must be odd"),
        ("optimizer.momentum", 1.0, "config.optimizer.momentum=1.0: must be in [0.0, 1.0)"),
        (
            "loss.attribute_min_ratio",
            0.0,
            "config.loss.attribute_min_ratio=0.0: must be in (0.0, 0.5]",
        ),
        ("optimizer.step_boundaries", (0.9, 0.5), "config.optimizer.step_boundaries=(0.9, 0.5)"),
        ("image_size", 48, "config.image_size=48 must be a multiple of 32"),
        ("input.retrieval_k", 1, "config.input.retrieval_k=1: must be >= 2"),
    ],
)
def test_numeric_config_values_out_of_range_fail_in_one_line(field, value, message):
  config = tiny_config(**{field: value})
  with pytest.raises(ConfigError) as e:
    validate_config(config)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_negative_stage_weight_and_empty_schedule_fail():
  config = tiny_config()
  config.stages[0].weights.landmark = -1.0
  with pytest.raises(ConfigError, match=r"stages\['pose'\].weights.landmark=-1.0: must be >= 0"):
    validate_config(config)
  config = tiny_config()
  for stage in config.stages:
    stage.steps = 0
  with pytest.raises(ConfigError, match="nothing to train"):
    validate_config(config)


# --- the workdir: a folder, writable, one writer --------------------------------------


def test_workdir_that_is_a_file_fails_in_one_line(tmp_path):
  path = tmp_path / "run"
  path.write_text("not a folder")
  with pytest.raises(WorkdirError, match=f"--workdir {path}: exists and is not a folder"):
    run_workdir.prepare(path)
  assert path.read_text() == "not a folder"


_HOLD_LOCK = """
import sys, time
from fashionnet_jax.training.workdir import WorkdirLock
WorkdirLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_second_writer_fails_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", _HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WorkdirError) as e:
      run_workdir.WorkdirLock(tmp_path).acquire()
    assert f"host {socket.gethostname()}, pid {holder.pid}" in str(e.value)
  finally:
    holder.send_signal(signal.SIGKILL)  # dies holding it: the file stays behind
    holder.wait()
  assert str(holder.pid) in (tmp_path / run_workdir.LOCK_FILE).read_text()
  lock = run_workdir.WorkdirLock(tmp_path).acquire()
  try:
    assert json.loads((tmp_path / run_workdir.LOCK_FILE).read_text())["pid"] == os.getpid()
    with pytest.raises(WorkdirError, match=f"pid {os.getpid()}"):
      run_workdir.WorkdirLock(tmp_path).acquire()  # the same process, a second writer
  finally:
    lock.release()
  run_workdir.WorkdirLock(tmp_path).acquire().release()


def _fake_run(workdir, config):
  """A run's identity as train.py leaves it: config.json and a checkpoint step folder."""
  (workdir / "checkpoints" / "4").mkdir(parents=True)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))


def test_resuming_with_a_changed_model_fails_before_touching_the_run(tmp_path):
  _fake_run(tmp_path, tiny_config())
  before = _files(tmp_path)
  changed = tiny_config(**{"model.fc6_dim": 48, "dataset.name": "deepfashion/inshop"})
  with pytest.raises(ConfigError) as e:
    run_workdir.claim(tmp_path, changed, writer=True)
  message = str(e.value)
  assert "model.fc6_dim: 32 -> 48" in message
  assert "dataset.name: 'deepfashion/category_attribute' -> 'deepfashion/inshop'" in message
  assert f"--config.init_from={tmp_path}" in message and "\n" not in message
  assert _files(tmp_path) == before  # no lock file, config.json as it was


def test_resuming_may_change_steps_eval_cadence_logging_and_data_paths(tmp_path):
  _fake_run(tmp_path, tiny_config())
  resumed = tiny_config(
      **{
          "eval_every_steps": 7,
          "log_every_steps": 1,
          "keep_checkpoints": 5,
          "dataset.data_dir": "/elsewhere",
          "num_rounds": 3,
      }
  )
  resumed.stages[1].steps = 9
  resumed.eval_flip_test = True
  run_workdir.claim(tmp_path, resumed, writer=True).release()


def test_a_run_made_before_a_field_existed_resumes_with_the_fields_old_behaviour(tmp_path):
  """config.json of a run from before model.landmark_head, loss.heatmap_sigma and
  eval_flip_test resumes with their defaults (what it did), and not with a heatmap head."""
  old = json.loads(tiny_config().to_json_best_effort())
  del old["model"]["landmark_head"], old["loss"]["heatmap_sigma"], old["eval_flip_test"]
  (tmp_path / "checkpoints" / "4").mkdir(parents=True)
  (tmp_path / "config.json").write_text(json.dumps(old))
  run_workdir.claim(tmp_path, tiny_config(), writer=True).release()
  with pytest.raises(ConfigError, match=r"model.landmark_head: '<unset>' -> 'heatmap'"):
    run_workdir.claim(tmp_path, tiny_config(**{"model.landmark_head": "heatmap"}), writer=True)


# --- damaged checkpoints ----------------------------------------------------------------


def _truncate_arrays(step_dir):
  for f in (step_dir / "state").rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


DAMAGE = {
    "truncated array files": _truncate_arrays,
    "manifest deleted": lambda d: (d / "state" / "manifest.ocdbt").unlink(),
    "meta item deleted": lambda d: shutil.rmtree(d / "meta"),
}


def _three_steps(workdir):
  state = {"w": jnp.arange(600.0), "b": jnp.ones((3, 4))}
  ckpt = Checkpointer(workdir, every_steps=1, keep=5, async_save=False)
  for step in (1, 2, 3):
    ckpt.save(step, jax.tree.map(lambda x: x * step, state), None, {"step": step})
  ckpt.close()
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_newest_checkpoint_falls_back_and_is_moved_aside(tmp_path, damage, caplog):
  abstract = _three_steps(tmp_path)
  DAMAGE[damage](tmp_path / "checkpoints" / "3")
  damaged_files = _files(tmp_path / "checkpoints" / "3")

  reader = Checkpointer(tmp_path, every_steps=0, keep=5, read_only=True)
  step, state = reader.restore_newest(lambda s: reader.restore(abstract, None, s))
  reader.close()
  assert step == 2 and (tmp_path / "checkpoints" / "3").exists()  # a reader moves nothing

  ckpt = Checkpointer(tmp_path, every_steps=1, keep=5, async_save=False)
  step, (state, meta) = ckpt.restore_newest(lambda s: ckpt.restore(abstract, None, s))
  assert step == 2 and meta == {"step": 2}
  np.testing.assert_array_equal(state["w"], np.arange(600.0) * 2)
  assert sorted(ckpt.manager.all_steps()) == [1, 2]
  ckpt.close()
  assert "checkpoints/3 cannot be restored, skipping it" in caplog.text
  assert "Restored step 2 instead of step 3." in caplog.text
  assert _files(tmp_path / DAMAGED_FOLDER / "3") == damaged_files  # kept, byte for byte


def test_no_restorable_checkpoint_is_one_line(tmp_path):
  abstract = _three_steps(tmp_path)
  for step in (1, 2, 3):
    _truncate_arrays(tmp_path / "checkpoints" / str(step))
  ckpt = Checkpointer(tmp_path, every_steps=1, keep=5, async_save=False)
  with pytest.raises(
      CheckpointError, match=r"checkpoints: no checkpoint restores \(newest, step 3"
  ):
    ckpt.restore_newest(lambda s: ckpt.restore(abstract, None, s))
  ckpt.close()
  assert not (tmp_path / DAMAGED_FOLDER).exists()  # nothing proven damaged: nothing moved


# --- bad weight files ----------------------------------------------------------------


def test_unreadable_init_from_files_name_the_file(tmp_path):
  from fashionnet_jax import weights
  from fashionnet_jax.models.pretrained import WeightImportError, convert

  text = tmp_path / "vgg16_imagenet.npz"
  text.write_text("this is not an npz\n")
  good = tmp_path / "good.npz"
  np.savez(good, a=np.zeros(5000))
  truncated = tmp_path / "truncated.npz"
  truncated.write_bytes(good.read_bytes()[:4000])
  for path in (text, truncated):
    with pytest.raises(WeightImportError, match=f"{path}: not a readable .npz"):
      convert(str(path), "vgg16")
  pth = tmp_path / "vgg16.pth"
  pth.write_text("not a torch file")
  with pytest.raises(SystemExit) as e:
    weights.main(["--source", str(pth), "--out", str(tmp_path / "out")])
  assert e.value.code == USER_ERROR_EXIT


# --- main, as a user runs it --------------------------------------------------------------


def _read_only_mount(target: Path, source: Path | None = None) -> bool:
  """A read-only tmpfs at target (with a copy of source): EROFS even for root."""
  target.mkdir(parents=True, exist_ok=True)
  if (
      shutil.which("mount") is None
      or subprocess.call(["mount", "-t", "tmpfs", "tmpfs", str(target)], stderr=subprocess.DEVNULL)
      != 0
  ):
    return False  # not root (or no mount at all): the caller skips, or fails under CI
  if source is not None:
    shutil.copytree(source, target, dirs_exist_ok=True)
  return subprocess.call(["mount", "-o", "remount,ro", str(target)]) == 0


def _unmount(target: Path):
  """Undoes _read_only_mount; nothing to do where it mounted nothing (no root, no mount)."""
  if os.path.ismount(target):
    subprocess.call(["umount", str(target)], stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_user_mistakes_in_main_are_one_line_and_exit_2(tmp_path, data_dir, trained):
  run = tmp_path / "run"
  shutil.copytree(trained[0], run)
  run_files = _files(run)
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  read_only = tmp_path / "ro"
  mounted = _read_only_mount(read_only)
  cases = {
      "unknown key": (
          [f"--workdir={tmp_path / 'w1'}", "--config.foo=1"],
          "error: --config.foo: the config has no field 'foo'",
      ),
      "negative lr": (
          [f"--workdir={tmp_path / 'w2'}", "--config.optimizer.learning_rate=-0.1"],
          "error: config.optimizer.learning_rate=-0.1: must be > 0.0",
      ),
      "keep 0": (
          [f"--workdir={tmp_path / 'w3'}", "--config.keep_checkpoints=0"],
          "error: config.keep_checkpoints=0: must be >= 1",
      ),
      "workdir a file": (
          [f"--workdir={a_file}"],
          f"error: --workdir {a_file}: exists and is not a folder",
      ),
      "missing init_from": (
          [f"--workdir={tmp_path / 'w4'}", "--config.init_from=/nonexistent.pth"],
          "error: config.init_from=/nonexistent.pth: no such file or run folder",
      ),
      "changed model": (
          [f"--workdir={run}", "--config.model.fc6_dim=48"],
          "model.fc6_dim: 32 -> 48",
      ),
  }
  if mounted:
    cases["read-only workdir"] = (
        [f"--workdir={read_only}"],
        f"error: --workdir {read_only}: not writable",
    )
  try:
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fashionnet_jax.main",
                f"--config={e2e.CONFIG}",
                f"--config.dataset.data_dir={data_dir}",
                *flags,
            ],
            cwd=e2e.ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (flags, _) in cases.items()
    }
    for name, proc in procs.items():
      _, err = proc.communicate(timeout=240)
      lines = [l for l in err.splitlines() if l.startswith("error:")]
      assert proc.returncode == USER_ERROR_EXIT, (name, err[-2000:])
      assert "Traceback" not in err and len(lines) == 1, (name, err[-2000:])
      assert cases[name][1] in lines[0], (name, lines)
  finally:
    if mounted:
      _unmount(read_only)
  assert _files(run) == run_files  # the changed config touched nothing
  assert not (tmp_path / "w2").exists() and a_file.read_text() == "x"
  host.needs(mounted, "mount -t tmpfs failed (needs root): the read-only workdir case did not run")


@pytest.mark.slow
def test_damaged_newest_checkpoint_resumes_from_the_previous_one(tmp_path, data_dir, trained):
  reference, log = trained
  run = tmp_path / "run"
  shutil.copytree(reference, run)
  assert e2e.checkpoint_steps(run) == [20, 24]
  _truncate_arrays(run / "checkpoints" / "24")
  damaged = _files(run / "checkpoints" / "24")
  out = e2e.finish(e2e.main_process(run, data_dir))
  assert "checkpoints/24 cannot be restored, skipping it" in out
  assert "Restored step 20 instead of step 24." in out
  assert _files(run / DAMAGED_FOLDER / "24") == damaged
  # Retrained 20 -> 24 from the restored state and data iterator: the same run.
  assert e2e.fingerprints(out) == e2e.fingerprints(log)
  want = json.loads((reference / "eval" / "24.json").read_text())
  got = json.loads((run / "eval" / "24.json").read_text())
  assert got == want


def test_second_process_on_a_workdir_fails_at_once(tmp_path, data_dir):
  workdir = tmp_path / "run"
  first = e2e.main_process(workdir, data_dir)
  try:
    deadline = time.time() + 120
    lock = workdir / run_workdir.LOCK_FILE
    while not (lock.exists() and lock.read_text()):
      assert first.poll() is None and time.time() < deadline
      time.sleep(0.05)
    before = set(_files(workdir))
    second = e2e.main_process(workdir, data_dir)
    out = e2e.finish(second, timeout=120, returncode=USER_ERROR_EXIT)
    assert f"another training process holds it (host {socket.gethostname()}, pid {first.pid}" in out
    assert "Traceback" not in out
    assert first.poll() is None  # the holder trains on
    assert before <= set(_files(workdir))  # the second one removed nothing
    assert str(first.pid) in lock.read_text()
  finally:
    first.kill()
    first.wait()


def test_retrieve_and_serve_refuse_an_index_of_another_embedding_size(run_dir, tmp_path, capsys):
  from PIL import Image

  from fashionnet_jax import retrieve

  index = tmp_path / "index"
  index.mkdir()
  (index / "meta.json").write_text(
      json.dumps(dict(complete=True, images=str(tmp_path), model=dict(workdir="elsewhere", step=1)))
  )
  np.save(index / "embeddings.npy", np.zeros((3, 7), np.float32))  # the model's is 16
  (index / "paths.txt").write_text("a.jpg\nb.jpg\nc.jpg\n")
  photo = tmp_path / "query.jpg"
  Image.new("RGB", (64, 64), (200, 30, 30)).save(photo)
  err = io.StringIO()
  status = retrieve.run(
      ["query", "--index", str(index), "--workdir", str(run_dir / "workdir"), str(photo)],
      stdout=io.StringIO(),
      stderr=err,
  )
  assert status == USER_ERROR_EXIT
  lines = [l for l in err.getvalue().splitlines() if "error:" in l]
  assert lines == [
      f"python -m fashionnet_jax.retrieve query: error: --index {index}: its embeddings "
      "have 7 dimensions, this model's 16: rebuild the index with this model"
  ], err.getvalue()
  from fashionnet_jax.serve.__main__ import main as serve

  with pytest.raises(SystemExit) as e:
    serve(["--workdir", str(run_dir / "workdir"), "--index", str(index), "--port", "1"])
  assert e.value.code == USER_ERROR_EXIT
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      f"error: --index {index}: its embeddings have 7 dimensions, this model's 16: rebuild the "
      "index with this model"
  )
