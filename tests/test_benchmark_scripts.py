"""The GPU benchmark scripts: shellcheck, and the snapshots of earlier commits that
gpu_run.sh benchmarks side by side with the working tree."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "fashionnet_jax" / "benchmarks"
SNAPSHOTS = BENCHMARKS / "ab_snapshots.sh"


def run(*args):
  return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                        timeout=60)


def test_shellcheck_passes_on_the_benchmark_scripts():
  if shutil.which("shellcheck") is None:
    pytest.fail("shellcheck is not installed: apt-get install -y shellcheck")
  scripts = sorted(BENCHMARKS.glob("*.sh"))
  assert {p.name for p in scripts} >= {"gpu_run.sh", "gpu_profile.sh", "ab_snapshots.sh"}
  r = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True,
                     cwd=ROOT)
  assert r.returncode == 0, r.stdout + r.stderr


def test_snapshot_holds_the_commits_code(tmp_path):
  out = tmp_path / "ref"
  r = run(SNAPSHOTS, "--out", out, "head=HEAD")
  assert r.returncode == 0, r.stderr
  head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                        cwd=ROOT).stdout.strip()
  assert (out / "head" / "COMMIT").read_text().strip() == head
  committed = subprocess.run(["git", "show", "HEAD:fashionnet_jax/models/vgg.py"],
                             capture_output=True, text=True, cwd=ROOT).stdout
  assert (out / "head" / "fashionnet_jax" / "models" / "vgg.py").read_text() == committed
  assert (out / "head" / "configs" / "gpu.py").is_file()
  assert not (out / "head" / "tests").exists()  # code and configs only


@pytest.mark.parametrize("spec, message", [
    ("v1", "error: expected NAME=COMMIT, got 'v1'"),
    ("v1=0000000000", "error: v1=0000000000: no such commit"),
])
def test_bad_snapshot_spec_is_one_line_and_writes_nothing(tmp_path, spec, message):
  out = tmp_path / "ref"
  out.mkdir()
  (out / "keep").write_text("earlier snapshots stay when the request is bad")
  r = run(SNAPSHOTS, "--out", out, spec)
  assert r.returncode == 2 and r.stderr.strip() == message
  assert (out / "keep").exists()
