"""Launch scripts: shellcheck, the commands tpu_vm.sh prints (--dry-run) and runs
(against a fake gcloud), the remote train command run for real in a sandbox, and the
GPU scripts' jax.distributed environment under a fake srun/scontrol."""

import os
import pathlib
import shlex
import shutil
import stat
import subprocess

import pytest

import host

from fashionnet_jax.errors import PREEMPTED_EXIT

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
TPU_VM = LAUNCH / "tpu_vm.sh"
SINGLE_NODE = LAUNCH / "gpu" / "single_node.sh"
SBATCH = LAUNCH / "gpu" / "slurm.sbatch"

SUBCOMMANDS = [
    "create",
    "setup",
    "data",
    "mount",
    "train",
    "logs",
    "tensorboard",
    "resume",
    "delete",
]
SETTINGS = (
    "TPU_",
    "GCP_PROJECT",
    "GCS_BUCKET",
    "FASHIONNET_",
    "TFDS_DATA_DIR",
    "SLURM_",
    "CUDA_VISIBLE_DEVICES",
    "JAX_",
    "PYTHON",
)


def clean_env(**extra):
  env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
  env.update(extra)
  return env


def sh(cmd, env=None, cwd=ROOT):
  return subprocess.run(
      [str(c) for c in cmd],
      capture_output=True,
      text=True,
      cwd=cwd,
      env=env if env is not None else clean_env(),
      timeout=60,
  )


def write_exe(path, text):
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


# ------------------------------------------------------------------ shellcheck --


def test_shellcheck_passes_on_every_launch_script():
  host.program("shellcheck", "apt-get install shellcheck")
  scripts = sorted(p for p in LAUNCH.rglob("*") if p.suffix in (".sh", ".sbatch"))
  assert {p.name for p in scripts} >= {
      "tpu_vm.sh",
      "single_node.sh",
      "slurm.sbatch",
      "slurm_task.sh",
      "common.sh",
  }
  r = sh(["shellcheck", "-x", *[p.relative_to(ROOT) for p in scripts]])
  assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------- tpu_vm.sh --dry-run --

TPU = dict(
    TPU_ZONE="us-central2-b",
    GCP_PROJECT="proj-1",
    GCS_BUCKET="gs://fn-bucket",
    FASHIONNET_WORKDIR="gs://fn-bucket/runs/a",
)


def dry(sub, *flags, accelerator="v3-8", **env):
  """The commands `tpu_vm.sh SUB --dry-run` prints, each split into its words."""
  r = sh(
      [TPU_VM, sub, "--dry-run", *flags], env=clean_env(**TPU, TPU_ACCELERATOR=accelerator, **env)
  )
  assert r.returncode == 0, r.stderr
  return [shlex.split(line) for line in r.stdout.splitlines() if not line.startswith("#")]


def option(words, name):
  values = [w.split("=", 1)[1] for w in words if w.startswith(f"--{name}=")]
  assert len(values) == 1, (name, words)
  return values[0]


def ssh_commands(cmds):
  return [c for c in cmds if c[:4] == ["gcloud", "compute", "tpus", "tpu-vm"] and c[4] == "ssh"]


@pytest.mark.parametrize("accelerator", ["v3-8", "v4-32"])
@pytest.mark.parametrize("spot", [True, False])
def test_create(accelerator, spot):
  (cmd,) = dry("create", *(["--spot"] if spot else []), accelerator=accelerator)
  assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "fashionnet"]
  assert option(cmd, "zone") == "us-central2-b" and option(cmd, "project") == "proj-1"
  assert option(cmd, "accelerator-type") == accelerator
  assert option(cmd, "version") == "tpu-ubuntu2204-base"
  assert ("--spot" in cmd) == spot


@pytest.mark.parametrize(
    "accelerator,version",
    [
        ("v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5p-8", "v2-alpha-tpuv5"),
        ("v6e-8", "v2-alpha-tpuv6e"),
        ("v2-32", "tpu-ubuntu2204-base"),
    ],
)
def test_create_picks_the_software_version_by_generation(accelerator, version):
  (cmd,) = dry("create", accelerator=accelerator)
  assert option(cmd, "version") == version
  (cmd,) = dry("create", "--version=my-image", accelerator=accelerator)
  assert option(cmd, "version") == "my-image"


@pytest.mark.parametrize("accelerator", ["v3-8", "v4-32"])
def test_setup_copies_the_checkout_and_installs_on_every_worker(accelerator):
  tar, scp, ssh = dry("setup", accelerator=accelerator)
  assert tar[:2] == ["tar", "-czf"] and tar[-3:] == ["-C", str(ROOT), "."]
  assert "--exclude=.git" in tar and "--exclude=.venv" in tar
  assert scp[4] == "scp" and scp[5] == tar[2] and "--worker=all" in scp
  assert scp[6] == "fashionnet:fashionnet_jax_src.tgz"
  assert ssh[4:6] == ["ssh", "fashionnet"] and "--worker=all" in ssh
  assert option(ssh, "zone") == "us-central2-b" and option(ssh, "project") == "proj-1"
  remote = option(ssh, "command")
  for piece in [
      '"jax[tpu]"',
      '-e "$HOME/fashionnet_jax"',
      "install -y tmux gcsfuse",
      'venv --python 3.11 "$HOME/fashionnet_venv"',
      'tar -xzf "$HOME/fashionnet_jax_src.tgz"',
  ]:
    assert piece in remote


def test_setup_from_a_git_repo_clones_on_the_workers():
  (ssh,) = dry("setup", "--repo=https://github.com/me/fashionnet_jax.git", "--ref", "v1")
  remote = option(ssh, "command")
  assert (
      "git clone --depth 1 --branch v1 https://github.com/me/fashionnet_jax.git "
      '"$HOME/fashionnet_jax"'
  ) in remote
  assert "--worker=all" in ssh


def assert_mounts(remote):
  assert ("gcsfuse -o ro --implicit-dirs fn-bucket /mnt/gcs/fn-bucket") in remote
  assert "mountpoint -q /mnt/gcs/fn-bucket ||" in remote


@pytest.mark.parametrize("accelerator", ["v3-8", "v4-32"])
def test_data_builds_uploads_and_mounts_on_every_worker(accelerator, tmp_path):
  build, upload, ssh = dry(
      "data", f"--manual-dir={tmp_path}", "--data-dir=/tmp/tfds", accelerator=accelerator
  )
  assert build == [
      "tfds",
      "build",
      str(ROOT / "datasets/deepfashion"),
      f"--manual_dir={tmp_path}",
      "--config=category_attribute",
      "--file_format=array_record",
      "--data_dir=/tmp/tfds",
  ]
  assert upload == [
      "gcloud",
      "storage",
      "rsync",
      "--recursive",
      "/tmp/tfds/deepfashion",
      "gs://fn-bucket/tensorflow_datasets/deepfashion",
  ]
  assert "--worker=all" in ssh
  assert_mounts(option(ssh, "command"))


def test_data_upload_only_needs_no_tpu(tmp_path):
  r = sh(
      [
          TPU_VM,
          "data",
          "--dry-run",
          "--skip-build",
          "--no-mount",
          "--bucket=bk1",
          "--data-dir=built",
          "--dataset-config=inshop",
      ],
      cwd=tmp_path,
  )
  assert r.returncode == 0, r.stderr
  assert r.stdout.splitlines() == [
      f"gcloud storage rsync --recursive {tmp_path}/built/deepfashion "
      "gs://bk1/tensorflow_datasets/deepfashion"
  ]


@pytest.mark.parametrize("accelerator", ["v3-8", "v4-32"])
def test_train_starts_main_in_tmux_on_every_worker(accelerator):
  (ssh,) = dry(
      "train",
      "--config=configs/resnet50.py",
      "--",
      "--config.batch_size=512",
      accelerator=accelerator,
  )
  assert ssh[4:6] == ["ssh", "fashionnet"] and "--worker=all" in ssh
  assert option(ssh, "zone") == "us-central2-b" and option(ssh, "project") == "proj-1"
  remote = option(ssh, "command")
  assert_mounts(remote)
  assert "tmux new-session -d -s fashionnet" in remote
  for piece in [
      "TFDS_DATA_DIR=/mnt/gcs/fn-bucket/tensorflow_datasets",
      "-m fashionnet_jax.main --config=configs/resnet50.py "
      "--workdir=gs://fn-bucket/runs/a --mode=train --config.batch_size=512",
      'tee -a "$HOME/fashionnet_train.log"',
  ]:
    assert piece in remote
  assert "kill-session" not in remote  # refuses to start twice unless --restart
  (ssh,) = dry("train", "--restart", accelerator=accelerator)
  assert "tmux kill-session -t fashionnet" in option(ssh, "command")


FAKE_WORKER_TOOLS = {
    # tmux runs the session's command in the foreground, as a shell would.
    "tmux": '[ "$1" = has-session ] && exit 1\n[ "$1" = new-session ] && exec sh -c "$5"\n',
    "sudo": 'exec "$@"\n',
    "mountpoint": "exit 1\n",
    "gcsfuse": 'echo "$@" > "$HOME/gcsfuse.args"\n',
    "mkdir": "exit 0\n",
    "chown": "exit 0\n",
}


def test_the_remote_train_command_runs_main_with_the_right_arguments(tmp_path):
  """Runs the exact remote command on a fake worker: quoting survives both shells."""
  (ssh,) = dry("train", "--", "--config.note=it's a test", "--config.seed=3")
  home = tmp_path / "home"
  (home / "fashionnet_jax").mkdir(parents=True)
  (home / "fashionnet_venv" / "bin").mkdir(parents=True)
  write_exe(
      home / "fashionnet_venv" / "bin" / "python",
      '#!/bin/sh\n{ pwd; echo "$TFDS_DATA_DIR"; printf "%s\\n" "$@"; } > "$HOME/main.args"\n',
  )
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name, body in FAKE_WORKER_TOOLS.items():
    write_exe(bin_dir / name, "#!/bin/sh\n" + body)
  env = dict(PATH=f"{bin_dir}:/usr/bin:/bin", HOME=str(home), USER="me")
  r = subprocess.run(
      ["bash", "-c", option(ssh, "command")],
      env=env,
      cwd=home,
      capture_output=True,
      text=True,
      timeout=30,
  )
  assert r.returncode == 0, r.stderr
  assert "training started in tmux session fashionnet" in r.stdout
  cwd, data_dir, *argv = (home / "main.args").read_text().splitlines()
  assert cwd == str(home / "fashionnet_jax")
  assert data_dir == "/mnt/gcs/fn-bucket/tensorflow_datasets"
  assert argv == [
      "-m",
      "fashionnet_jax.main",
      "--config=configs/tpu_v3.py",
      "--workdir=gs://fn-bucket/runs/a",
      "--mode=train",
      "--config.note=it's a test",
      "--config.seed=3",
  ]
  assert (home / "gcsfuse.args").read_text().split() == [
      "-o",
      "ro",
      "--implicit-dirs",
      "fn-bucket",
      "/mnt/gcs/fn-bucket",
  ]
  assert (home / "fashionnet_train.log").exists()


def test_logs_and_tensorboard():
  (cmd,) = dry("logs", "--worker", "3")
  assert (
      "--worker=3" in cmd
      and option(cmd, "command") == 'tail -n 200 -F "$HOME/fashionnet_train.log"'
  )
  (cmd,) = dry("logs", "--attach")
  assert "--worker=0" in cmd and "--ssh-flag=-t" in cmd
  assert option(cmd, "command") == "tmux attach -t fashionnet"
  (cmd,) = dry("tensorboard", "--port=6010")
  assert "--worker=0" in cmd and cmd[-3:] == ["--", "-L", "6010:localhost:6010"]
  assert "--logdir=gs://fn-bucket/runs/a --port=6010" in option(cmd, "command")


@pytest.mark.parametrize("accelerator", ["v3-8", "v4-32"])
def test_resume_dry_run_shows_the_recreate_path(accelerator):
  cmds = dry("resume", "--spot", accelerator=accelerator)
  verbs = [c[4] for c in cmds if c[0] == "gcloud" and c[1] == "compute"]
  assert verbs == ["describe", "delete", "create", "scp", "ssh", "ssh"]
  create = next(c for c in cmds if c[4:5] == ["create"])
  assert "--spot" in create and option(create, "accelerator-type") == accelerator
  train = ssh_commands(cmds)[-1]
  assert "--worker=all" in train
  remote = option(train, "command")
  assert "tmux kill-session -t fashionnet" in remote
  assert "--workdir=gs://fn-bucket/runs/a" in remote


def test_delete():
  assert dry("delete") == [
      [
          "gcloud",
          "compute",
          "tpus",
          "tpu-vm",
          "delete",
          "fashionnet",
          "--zone=us-central2-b",
          "--project=proj-1",
          "--quiet",
      ]
  ]


# ------------------------------------------------------- tpu_vm.sh for real, fake gcloud --

FAKE_GCLOUD = """#!/bin/bash
{ printf '%q ' "$@"; echo; } >> "$FAKE_LOG"
case "$*" in
  "config get-value project") echo fake-project ;;
  *" describe "*) [ -n "$FAKE_STATE" ] && echo "$FAKE_STATE" || exit 1 ;;
esac
"""


@pytest.fixture
def fake_gcloud(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  write_exe(bin_dir / "gcloud", FAKE_GCLOUD)
  log = tmp_path / "gcloud.log"

  def run(*args, state="", **env):
    log.write_text("")
    r = sh(
        [TPU_VM, *args],
        env=clean_env(
            PATH=f"{bin_dir}:{os.environ['PATH']}",
            FAKE_LOG=str(log),
            FAKE_STATE=state,
            TMPDIR=str(tmp_path),
            **env,
        ),
    )
    return r, [shlex.split(line) for line in log.read_text().splitlines()]

  return run


def test_project_falls_back_to_gcloud_config_when_not_dry_run(fake_gcloud):
  r, calls = fake_gcloud("delete", "--zone=z-1")
  assert r.returncode == 0, r.stderr
  assert calls == [
      ["config", "get-value", "project"],
      [
          "compute",
          "tpus",
          "tpu-vm",
          "delete",
          "fashionnet",
          "--zone=z-1",
          "--project=fake-project",
          "--quiet",
      ],
  ]


@pytest.mark.parametrize(
    "state,verbs",
    [
        ("READY", ["describe", "ssh"]),
        ("PREEMPTED", ["describe", "delete", "create", "scp", "ssh", "ssh"]),
        ("", ["describe", "create", "scp", "ssh", "ssh"]),  # the TPU is gone
    ],
)
def test_resume_recreates_only_a_preempted_or_missing_tpu(fake_gcloud, state, verbs):
  r, calls = fake_gcloud("resume", "--spot", state=state, **TPU, TPU_ACCELERATOR="v4-32")
  assert r.returncode == 0, r.stderr
  assert [c[3] for c in calls] == verbs
  train = calls[-1]
  assert "--worker=all" in train and "tmux kill-session" in option(train, "command")


def test_resume_if_preempted_leaves_a_ready_tpu_alone(fake_gcloud):
  r, calls = fake_gcloud("resume", "--if-preempted", state="READY", **TPU, TPU_ACCELERATOR="v3-8")
  assert r.returncode == 0, r.stderr
  assert [c[3] for c in calls] == ["describe"]
  r, calls = fake_gcloud("resume", state="CREATING", **TPU, TPU_ACCELERATOR="v3-8")
  assert [c[3] for c in calls] == ["describe"]
  assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
      "error: TPU fashionnet is CREATING; run tpu_vm.sh resume again once it settles"
  )


# ----------------------------------------------------------------------- errors --


@pytest.mark.parametrize(
    "args,env,message",
    [
        (
            ["create"],
            {"GCP_PROJECT": "p", "TPU_ACCELERATOR": "v3-8"},
            "error: --zone (or TPU_ZONE) is required for create",
        ),
        (
            ["create"],
            {"TPU_ZONE": "z", "GCP_PROJECT": "p"},
            "error: --accelerator (or TPU_ACCELERATOR) is required for create",
        ),
        (
            ["create", "--accelerator=tpu8"],
            {"TPU_ZONE": "z", "GCP_PROJECT": "p"},
            "error: --accelerator 'tpu8' is not a TPU type such as v3-8, v4-32, v5litepod-16",
        ),
        (
            ["setup"],
            {"TPU_ZONE": "z"},
            "error: --project (or GCP_PROJECT) is required for setup --dry-run (gcloud's default "
            "project is looked up only for real runs)",
        ),
        (
            ["train"],
            {"TPU_ZONE": "z", "GCP_PROJECT": "p", "FASHIONNET_WORKDIR": "gs://b/r"},
            "error: --bucket (or GCS_BUCKET) is required for train",
        ),
        (
            ["train", "--bucket=bk1"],
            {"TPU_ZONE": "z", "GCP_PROJECT": "p"},
            "error: --workdir (or FASHIONNET_WORKDIR) is required for train",
        ),
        (
            ["train", "--bucket=bk1", "--workdir=/tmp/run"],
            {"TPU_ZONE": "z", "GCP_PROJECT": "p"},
            "error: --workdir must be a gs:// path (every TPU worker writes to it), got '/tmp/run'",
        ),
        (
            ["data", "--bucket=bk1"],
            {"TPU_ZONE": "z", "GCP_PROJECT": "p"},
            "error: --manual-dir (the DeepFashion download) is required for data (or --skip-build)",
        ),
        (
            ["mount"],
            {"TPU_ZONE": "z", "GCP_PROJECT": "p"},
            "error: --bucket (or GCS_BUCKET) is required for mount",
        ),
        (
            ["create", "--zone=z", "--workdir=gs://b/r"],
            {},
            "error: unknown flag --workdir for create (see tpu_vm.sh create --help)",
        ),
        (
            ["launch"],
            {},
            "error: unknown subcommand 'launch' (one of create setup data mount "
            "train logs tensorboard resume delete)",
        ),
        (["logs", "--worker=one"], {}, "error: --worker must be a worker number, got 'one'"),
        (
            ["mount", "--bucket=gs://My_Bucket/x"],
            {},
            "error: --bucket 'My_Bucket/x' is not a bucket name (give the name only, e.g. my-bucket)",
        ),
    ],
)
def test_missing_or_bad_settings_give_one_line(args, env, message):
  r = sh([TPU_VM, *args, "--dry-run"], env=clean_env(**env))
  assert r.returncode == 2
  assert r.stderr.strip() == message and r.stdout == ""


def test_help():
  r = sh([TPU_VM, "--help"])
  assert r.returncode == 0
  for sub in SUBCOMMANDS:
    assert f"\n  {sub} " in r.stdout
  for sub in SUBCOMMANDS:
    r = sh([TPU_VM, sub, "--help"])
    assert r.returncode == 0 and r.stdout.startswith(f"usage: tpu_vm.sh {sub} ")
    assert "--dry-run" in r.stdout and "--zone" in r.stdout
  assert "--spot" in sh([TPU_VM, "create", "--help"]).stdout
  assert "--manual-dir" in sh([TPU_VM, "data", "--help"]).stdout
  r = sh([TPU_VM])
  assert r.returncode == 2 and r.stderr.startswith("usage: tpu_vm.sh SUBCOMMAND")


# ------------------------------------------------------------------- GPU scripts --


def test_single_node_dry_run(tmp_path):
  r = sh(
      [
          SINGLE_NODE,
          "--dry-run",
          "--workdir",
          "runs/a",
          "--data-dir=tfds",
          "--",
          "--config.batch_size=64",
      ],
      cwd=tmp_path,
  )
  assert r.returncode == 0, r.stderr
  assert shlex.split(r.stdout) == [
      "cd",
      str(ROOT),
      "&&",
      f"TFDS_DATA_DIR={tmp_path}/tfds",
      "python",
      "-m",
      "fashionnet_jax.main",
      "--config=configs/gpu.py",
      f"--workdir={tmp_path}/runs/a",
      "--mode=train",
      "--config.batch_size=64",
  ]
  r = sh(
      [
          SINGLE_NODE,
          "--dry-run",
          "--workdir=gs://b/run",
          "--config=configs/resnet50.py",
          "--mode=evaluate",
      ]
  )
  assert r.stdout.split()[3:] == [
      "python",
      "-m",
      "fashionnet_jax.main",
      "--config=configs/resnet50.py",
      "--workdir=gs://b/run",
      "--mode=evaluate",
  ]


def test_single_node_runs_main_from_the_repo_root(tmp_path):
  write_exe(tmp_path / "python", '#!/bin/sh\n{ pwd; echo "$TFDS_DATA_DIR"; echo "$@"; } > "$OUT"\n')
  out = tmp_path / "out"
  r = sh(
      [SINGLE_NODE, "--workdir=gs://b/run", "--python", tmp_path / "python"],
      env=clean_env(OUT=str(out), TFDS_DATA_DIR="/data/tfds"),
  )
  assert r.returncode == 0, r.stderr
  assert out.read_text().splitlines() == [
      str(ROOT),
      "/data/tfds",
      "-m fashionnet_jax.main --config=configs/gpu.py --workdir=gs://b/run --mode=train",
  ]


def test_single_node_errors():
  r = sh([SINGLE_NODE, "--dry-run"])
  assert (
      r.returncode == 2
      and r.stderr.strip() == "error: --workdir (or FASHIONNET_WORKDIR) is required"
  )
  r = sh([SINGLE_NODE, "--workdir=x", "--steps=3"])
  assert r.returncode == 2 and r.stderr.strip() == (
      "error: unknown argument '--steps=3' (see --help; flags for main go after --)"
  )
  r = sh([SINGLE_NODE, "--help"])
  assert r.returncode == 0 and "--data-dir" in r.stdout


FAKE_SRUN = """#!/bin/bash
echo "$*" > "$FAKE_LOG/srun.args"
shift  # --kill-on-bad-exit=1
for ((node = 0; node < SLURM_JOB_NUM_NODES; node++)); do
  for ((local = 0; local < FAKE_TASKS_PER_NODE; local++)); do
    SLURM_PROCID=$((node * FAKE_TASKS_PER_NODE + local)) SLURM_LOCALID=$local \
      CUDA_VISIBLE_DEVICES=$FAKE_VISIBLE "$@" || exit
  done
done
"""
FAKE_SCONTROL = """#!/bin/bash
echo "$*" > "$FAKE_LOG/scontrol.args"
printf 'gpu-a17\\ngpu-a18\\n'
"""
FAKE_PYTHON = """#!/bin/bash
{ echo "$*"; env | grep -E '^(FASHIONNET_[A-Z_]+|JAX_[A-Z_]+|TFDS_DATA_DIR)=' | sort; } \
  > "$FAKE_LOG/process.$FASHIONNET_PROCESS_ID"
exit "${FAKE_EXIT:-0}"
"""


def run_sbatch(tmp_path, script=SBATCH, tasks_per_node=1, visible="0,1,2,3", **env):
  bin_dir, log = tmp_path / "bin", tmp_path / "log"
  bin_dir.mkdir(exist_ok=True)
  log.mkdir(exist_ok=True)
  write_exe(bin_dir / "srun", FAKE_SRUN)
  write_exe(bin_dir / "scontrol", FAKE_SCONTROL)
  write_exe(bin_dir / "python", FAKE_PYTHON)
  slurm = dict(
      SLURM_JOB_ID="4242",
      SLURM_JOB_NODELIST="gpu-a[17-18]",
      SLURM_JOB_NUM_NODES="2",
      SLURM_NTASKS=str(2 * tasks_per_node),
      SLURM_SUBMIT_DIR=str(ROOT),
  )
  r = sh(
      ["bash", script, "--workdir=gs://b/run", "--data-dir=/shared/tfds", "--", "--config.seed=1"],
      env=clean_env(
          PATH=f"{bin_dir}:{os.environ['PATH']}",
          FAKE_LOG=str(log),
          FAKE_TASKS_PER_NODE=str(tasks_per_node),
          FAKE_VISIBLE=visible,
          **{**slurm, **env},
      ),
  )
  processes = {}
  for f in log.glob("process.*"):
    argv, *lines = f.read_text().splitlines()
    processes[int(f.suffix[1:])] = (argv, dict(l.split("=", 1) for l in lines))
  return r, log, processes


def test_slurm_one_process_per_node_drives_all_its_gpus(tmp_path):
  r, log, processes = run_sbatch(tmp_path)
  assert r.returncode == 0, r.stderr
  assert (log / "scontrol.args").read_text().split() == ["show", "hostnames", "gpu-a[17-18]"]
  srun = (log / "srun.args").read_text().split()
  assert srun[:2] == ["--kill-on-bad-exit=1", str(LAUNCH / "gpu" / "slurm_task.sh")]
  assert sorted(processes) == [0, 1]
  port = 4242 % 4096 + 61440
  for pid, (argv, env) in processes.items():
    assert argv == (
        "-m fashionnet_jax.main --config=configs/gpu.py --workdir=gs://b/run "
        "--mode=train --config.seed=1"
    )
    assert env["FASHIONNET_COORDINATOR_ADDRESS"] == f"gpu-a17:{port}"
    assert env["FASHIONNET_NUM_PROCESSES"] == "2"
    assert env["FASHIONNET_PROCESS_ID"] == str(pid)
    assert env["FASHIONNET_LOCAL_DEVICE_IDS"] == env["JAX_LOCAL_DEVICE_IDS"] == "0,1,2,3"
    assert env["JAX_COORDINATOR_ADDRESS"] == f"gpu-a17:{port}"
    assert env["TFDS_DATA_DIR"] == "/shared/tfds"


@pytest.mark.parametrize("visible,expected", [("0,1", [0, 1, 0, 1]), ("0", [0, 0, 0, 0])])
def test_slurm_one_process_per_gpu(tmp_path, visible, expected):
  r, _, processes = run_sbatch(
      tmp_path, tasks_per_node=2, visible=visible, FASHIONNET_COORDINATOR_PORT="5000"
  )
  assert r.returncode == 0, r.stderr
  assert sorted(processes) == [0, 1, 2, 3]
  assert [processes[p][1]["FASHIONNET_LOCAL_DEVICE_IDS"] for p in range(4)] == [
      str(i) for i in expected
  ]
  assert {processes[p][1]["FASHIONNET_NUM_PROCESSES"] for p in range(4)} == {"4"}
  assert {processes[p][1]["FASHIONNET_COORDINATOR_ADDRESS"] for p in range(4)} == {"gpu-a17:5000"}


def test_slurm_spooled_copy_finds_the_checkout_through_the_submit_dir(tmp_path):
  spooled = tmp_path / "slurm_script"
  shutil.copy(SBATCH, spooled)
  r, log, processes = run_sbatch(tmp_path, script=spooled)
  assert r.returncode == 0, r.stderr
  assert sorted(processes) == [0, 1]
  r, _, _ = run_sbatch(tmp_path, script=spooled, SLURM_SUBMIT_DIR=str(tmp_path))
  assert r.returncode == 2 and r.stderr.strip() == (
      f"error: no fashionnet_jax checkout at {tmp_path}: submit from the repository root "
      "or set FASHIONNET_ROOT"
  )


@pytest.mark.parametrize("exit_status", [PREEMPTED_EXIT, 1])
def test_slurm_requeues_a_preempted_run_and_passes_other_failures_on(tmp_path, exit_status):
  r, log, _ = run_sbatch(tmp_path, FAKE_EXIT=str(exit_status))
  requeued = (log / "scontrol.args").read_text().split() == ["requeue", "4242"]
  if exit_status == PREEMPTED_EXIT:
    assert r.returncode == 0 and requeued, r.stderr
    assert "requeueing job 4242" in r.stdout
  else:
    assert r.returncode == 1 and not requeued


def test_the_scripts_preempted_status_is_mains():
  assert f"PREEMPTED_EXIT={PREEMPTED_EXIT}\n" in (LAUNCH / "gpu" / "common.sh").read_text()


def test_slurm_header_and_outside_slurm():
  header = [l for l in SBATCH.read_text().splitlines() if l.startswith("#SBATCH")]
  assert "#SBATCH --ntasks-per-node=1" in header
  assert any(l.startswith("#SBATCH --gpus-per-node=") for l in header)
  assert any(l.startswith("#SBATCH --nodes=") for l in header)
  assert "#SBATCH --requeue" in header and "#SBATCH --signal=TERM@120" in header
  r = sh(["bash", SBATCH, "--workdir=gs://b/run"])
  assert r.returncode == 2 and r.stderr.strip() == (
      "error: SLURM_JOB_ID is not set: submit this script with sbatch (or run it inside salloc)"
  )
  r = sh([LAUNCH / "gpu" / "slurm_task.sh", "python"])
  assert r.returncode == 2 and "runs under srun" in r.stderr
