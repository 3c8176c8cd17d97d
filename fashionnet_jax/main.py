r"""FashionNet training and evaluation entry point.

  python -m fashionnet_jax.main --config=configs/default.py --workdir=/tmp/fashionnet
  python -m fashionnet_jax.main --config=configs/tpu_v3.py --workdir=gs://BUCKET/run \
      --config.batch_size=256
  python -m fashionnet_jax.main --config=configs/default.py --workdir=DIR --mode=evaluate
  python -m fashionnet_jax.main --config=configs/inshop.py:gpu --print_config

--print_config prints the resolved config (the file with its argument and every
--config.FIELD override: the JSON a run records as RUN/config.json) and exits
without training; it needs no --workdir.

Multi-host: on Cloud TPU pods and under SLURM `jax.distributed.initialize()` finds
its peers itself; elsewhere pass --coordinator_address/--num_processes/--process_id
(or FASHIONNET_COORDINATOR_ADDRESS, FASHIONNET_NUM_PROCESSES, FASHIONNET_PROCESS_ID).

Exit status: 0 done; 2 a user mistake (one line on stderr: config, data, weights,
checkpoint, workdir); 75 preempted by SIGTERM after saving a checkpoint (rerun the
same command to resume; launch/ scripts requeue on it); 1 training diverged.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from fashionnet_jax.cli import VERBOSE_FLAG_HELP, UsageError, config_flag, parse_absl_flags
from fashionnet_jax.errors import PREEMPTED_EXIT, exit_on_user_error

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py).", lock_config=True
)
flags.DEFINE_string(
    "workdir",
    None,
    "Where checkpoints, logs and evaluations go (local or gs://); "
    "required unless --print_config.",
)
flags.DEFINE_bool(
    "print_config",
    False,
    "Print the resolved config (file, argument and "
    "--config.FIELD overrides) as JSON and exit without training.",
)
flags.DEFINE_enum("mode", "train", ["train", "evaluate"], "Train (then evaluate) or only evaluate.")
flags.DEFINE_string(
    "coordinator_address",
    os.environ.get("FASHIONNET_COORDINATOR_ADDRESS"),
    "host:port of process 0, for multi-process runs outside TPU pods/SLURM.",
)
flags.DEFINE_integer(
    "num_processes",
    int(os.environ.get("FASHIONNET_NUM_PROCESSES", "0")) or None,
    "Number of processes of a multi-process run.",
)
flags.DEFINE_integer(
    "process_id",
    int(os.environ["FASHIONNET_PROCESS_ID"]) if "FASHIONNET_PROCESS_ID" in os.environ else None,
    "This process's index in a multi-process run.",
)
flags.DEFINE_string(
    "eval_dir",
    None,
    "--mode=evaluate: where the evaluation goes (default: the "
    "workdir when writable, else a temporary folder).",
)
flags.DEFINE_bool(
    "distributed",
    None,
    "Force (True) or skip (False) jax.distributed.initialize(); default: "
    "initialise when a coordinator is given or a TPU pod/SLURM job is detected.",
)
flags.DEFINE_bool("verbose", False, VERBOSE_FLAG_HELP)
flags.mark_flags_as_required(["config"])


def _multi_process_environment() -> bool:
  if FLAGS.coordinator_address:
    return True
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return True
  # Cloud TPU VMs: JAX reads the slice's workers from the metadata server;
  # initialising on a single-host slice is harmless.
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return (
      len([h for h in hosts.split(",") if h]) > 1
      or os.path.exists("/dev/accel0")
      or os.path.exists("/dev/vfio/0")
      or "TPU_ACCELERATOR_TYPE" in os.environ
  )


def initialize_distributed():
  import jax

  wanted = FLAGS.distributed if FLAGS.distributed is not None else _multi_process_environment()
  if not wanted:
    return
  kwargs = {}
  if FLAGS.coordinator_address:
    kwargs = dict(
        coordinator_address=FLAGS.coordinator_address,
        num_processes=FLAGS.num_processes,
        process_id=FLAGS.process_id,
    )
    local = os.environ.get("FASHIONNET_LOCAL_DEVICE_IDS")
    if local:  # one process driving several GPUs of a node (launch/gpu/slurm_task.sh)
      kwargs["local_device_ids"] = [int(i) for i in local.split(",")]
  # Must not touch jax.devices() before initialize(): read the platform from the env.
  if os.environ.get("JAX_PLATFORMS", "").split(",")[0] == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  logging.info(
      "jax.distributed: process %d of %d, %d local / %d global devices",
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
  )


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = config_flag()
  if FLAGS.print_config:
    print(config.to_json_best_effort(indent=1))
    return
  if not FLAGS.workdir:
    raise UsageError("--workdir is required: where checkpoints, logs and evaluations go")
  if config.get("xla_flags"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + config.xla_flags).strip()
  from fashionnet_jax import train

  initialize_distributed()
  try:
    if FLAGS.mode == "train":
      train.train_and_evaluate(config, FLAGS.workdir)
    else:
      train.evaluate_checkpoint(config, FLAGS.workdir, out_dir=FLAGS.eval_dir)
  except train.Preempted as e:
    # Not a failure: a scheduler (launch/, SLURM requeue) restarts the same command.
    print(str(e), file=sys.stderr)
    sys.exit(PREEMPTED_EXIT)
  except train.NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_absl_flags)
