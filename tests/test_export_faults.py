"""`python -m fashionnet_jax.export`'s own faults (issue 22): a blank or taken --out, a
partial version, a full disk, a read-only parent.

The command runs in-process with a fake Predictor and a fake writer in place of
`export_savedmodel` (tests/test_export.py runs the real export); the fake writes
what a SavedModel folder holds, or part of it and then fails as the disk would.
"""

import errno
import os
import re

import pytest

import host
from test_faults import _read_only_mount, _unmount

from fashionnet_jax.cli import UsageError
from fashionnet_jax.errors import USER_ERROR_EXIT
from fashionnet_jax.export.publish import publish

SUMMARY = {"signatures": {}, "outputs": [], "step": 7}
# TensorFlow's own words when the disk fills during SaveV2 (seen on a 64 KiB tmpfs).
TF_ENOSPC = (
    "{{function_node __wrapped__SaveV2_dtypes_2_device_/job:localhost/replica:0/task:0/"
    "device:CPU:0}} /x/.1.tmp-0/variables/variables_temp/part-00000-of-00001.data-00000-of-00001"
    ".tempstate1; No space left on device [Op:SaveV2]"
)


def _listing(folder):
  """{relative path: bytes or None for a folder} of everything under folder."""
  return {
      str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
      for p in sorted(folder.rglob("*"))
  }


class Writer:
  """A fake `export_savedmodel`: writes a SavedModel's files, or part of them then raises
  `error`; records the folder it was given and what --out looked like meanwhile."""

  def __init__(self, out, error=None):
    self.out, self.error, self.calls, self.max_pixels = out, error, [], None

  def __call__(self, predictor, folder, max_pixels):
    self.calls.append((folder, _listing(self.out) if self.out.exists() else None))
    self.max_pixels = max_pixels
    os.makedirs(os.path.join(folder, "variables"))
    with open(os.path.join(folder, "variables", "variables.data-00000-of-00001"), "wb") as f:
      f.write(b"partial")
    if self.error is not None:
      raise self.error
    with open(os.path.join(folder, "saved_model.pb"), "wb") as f:
      f.write(b"graph")
    return SUMMARY


@pytest.fixture
def export(monkeypatch, capsys):
  """run(out, writer) -> (exit status, stdout, stderr) of the command with the fakes in place."""
  import fashionnet_jax.export.savedmodel
  import fashionnet_jax.inference.predictor
  from fashionnet_jax.export.__main__ import main

  monkeypatch.setattr(fashionnet_jax.inference.predictor, "Predictor", lambda **_: object())

  def run(out, writer, *flags):
    monkeypatch.setattr(fashionnet_jax.export.savedmodel, "export_savedmodel", writer)
    try:
      main(["--workdir", "run", "--out", str(out), *flags])
      code = 0
    except SystemExit as e:
      code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err

  return run


def _one_error_line(err):
  assert err.startswith("error: ") and err.count("\n") == 1, err
  return err


def test_a_blank_or_taken_out_is_refused_in_one_line_and_nothing_is_touched(
    tmp_path, monkeypatch, export
):
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  (cwd / "notes.txt").write_text("mine")
  monkeypatch.chdir(cwd)  # where `--out ""` used to write
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  taken = tmp_path / "taken"
  taken.mkdir()
  (taken / "saved_model.pb").write_bytes(b"old")
  before = _listing(tmp_path)
  for out, words in (
      ("", "--out is empty or blank"),
      ("  ", "--out is empty or blank"),
      (a_file, f"--out {a_file}: exists and is not an empty folder"),
      (taken, f"--out {taken}: exists and is not an empty folder"),
  ):
    writer = Writer(tmp_path / "unused")
    code, _, err = export(out, writer)
    assert code == USER_ERROR_EXIT, (out, err)
    assert words in _one_error_line(err)
    assert writer.calls == []
  assert _listing(tmp_path) == before


@pytest.mark.parametrize("existing", ["absent", "empty folder", "absent parent"])
def test_the_savedmodel_is_written_beside_out_and_renamed_into_place(tmp_path, export, existing):
  base = tmp_path / "base" if existing == "absent parent" else tmp_path
  out = base / "1"
  if existing == "empty folder":
    out.mkdir()
  writer = Writer(out)
  code, stdout, err = export(out, writer)
  assert (code, err) == (0, "")
  ((folder, out_meanwhile),) = writer.calls
  # A hidden sibling, not a numeric name TF Serving would load; --out unseen until complete.
  assert os.path.dirname(folder) == str(base)
  assert re.fullmatch(r"\.1\.tmp-[0-9a-f]{8}", os.path.basename(folder)), folder
  assert out_meanwhile == ({} if existing == "empty folder" else None)
  assert sorted(os.listdir(base)) == ["1"]
  assert _listing(out) == {
      "saved_model.pb": b"graph",
      "variables": None,
      "variables/variables.data-00000-of-00001": b"partial",
  }
  assert f'"out": "{out}"' in stdout and '"step": 7' in stdout
  assert writer.max_pixels == 50_000_000  # the server's default limit


def test_max_pixels_reaches_the_savedmodel_and_a_bad_one_is_refused(tmp_path, export):
  writer = Writer(tmp_path / "1")
  assert export(tmp_path / "1", writer, "--max-pixels", "1000")[0] == 0
  assert writer.max_pixels == 1000
  code, _, err = export(tmp_path / "2", Writer(tmp_path / "2"), "--max-pixels", "0")
  assert code == USER_ERROR_EXIT and "--max-pixels 0" in _one_error_line(err)
  assert not (tmp_path / "2").exists()


@pytest.mark.parametrize(
    "error, cause",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied", "/x/variables"), "Permission denied"),
        ("tensorflow", "No space left on device"),
    ],
    ids=["ENOSPC", "EACCES", "TensorFlow's ENOSPC"],
)
def test_a_failed_write_is_one_line_leaves_nothing_and_a_retry_works(
    tmp_path, export, error, cause
):
  if error == "tensorflow":
    import tensorflow as tf

    error = tf.errors.ResourceExhaustedError(None, None, TF_ENOSPC)
  out = tmp_path / "base" / "1"
  code, stdout, err = export(out, Writer(out, error))
  assert (code, stdout) == (USER_ERROR_EXIT, "")
  assert f"error: --out {out}: {cause}; the partial copy was removed" in _one_error_line(err)
  assert os.listdir(tmp_path / "base") == []  # no partial version, no hidden leftover
  code, _, err = export(out, Writer(out))
  assert (code, err) == (0, "")
  assert sorted(os.listdir(tmp_path / "base")) == ["1"]


def test_a_bug_in_the_writer_keeps_its_traceback_and_leaves_nothing(tmp_path):
  def writer(folder):
    open(os.path.join(folder, "saved_model.pb"), "wb").close()
    raise ZeroDivisionError("a bug")

  with pytest.raises(ZeroDivisionError):
    publish(str(tmp_path / "1"), writer)
  assert os.listdir(tmp_path) == []


def test_an_out_written_meanwhile_is_kept_and_ours_removed(tmp_path):
  out = tmp_path / "1"

  def writer(folder):
    out.mkdir()  # another export finished first
    (out / "saved_model.pb").write_bytes(b"theirs")
    (tmp_path / folder / "saved_model.pb").write_bytes(b"ours")

  with pytest.raises(UsageError, match=r"exists and is not an empty folder \(written meanwhile\)"):
    publish(str(out), writer)
  assert _listing(tmp_path) == {"1": None, "1/saved_model.pb": b"theirs"}


def test_a_read_only_parent_is_one_line_and_leaves_nothing(tmp_path, export):
  read_only = tmp_path / "ro"
  root = os.geteuid() == 0
  if root:  # chmod does not bind root: a read-only tmpfs does
    usable, cause = _read_only_mount(read_only), "Read-only file system"
  else:
    read_only.mkdir()
    read_only.chmod(0o555)
    usable, cause = True, "Permission denied"
  try:
    if usable:
      new_base = read_only / "base"
      for out, words in (
          (read_only / "1", f"--out {read_only / '1'}: {read_only} is not writable"),
          (new_base / "1", f"--out {new_base / '1'}: {new_base}: {cause}"),  # makedirs fails
      ):
        writer = Writer(out)
        code, _, err = export(out, writer)
        assert code == USER_ERROR_EXIT, err
        assert words in _one_error_line(err)
        assert writer.calls == [] and os.listdir(read_only) == []
  finally:
    if root:
      _unmount(read_only)
    else:
      read_only.chmod(0o755)
  host.needs(usable, "mount -t tmpfs failed as root: the read-only parent case did not run")
