r"""FashionNet training and evaluation entry point.

  python -m fashionnet_jax.main --config=configs/default.py --workdir=/tmp/fashionnet
  python -m fashionnet_jax.main --config=configs/tpu_v3.py --workdir=gs://BUCKET/run \
      --config.batch_size=256
  python -m fashionnet_jax.main --config=configs/default.py --workdir=DIR --mode=evaluate

Multi-host: on Cloud TPU pods and under SLURM `jax.distributed.initialize()` finds
its peers itself; elsewhere pass --coordinator_address/--num_processes/--process_id
(or FASHIONNET_COORDINATOR_ADDRESS, FASHIONNET_NUM_PROCESSES, FASHIONNET_PROCESS_ID).
"""
from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, logs and evaluations go (local or gs://).")
flags.DEFINE_enum("mode", "train", ["train", "evaluate"], "Train (then evaluate) or only evaluate.")
flags.DEFINE_string("coordinator_address", os.environ.get("FASHIONNET_COORDINATOR_ADDRESS"),
                    "host:port of process 0, for multi-process runs outside TPU pods/SLURM.")
flags.DEFINE_integer("num_processes", int(os.environ.get("FASHIONNET_NUM_PROCESSES", "0")) or None,
                     "Number of processes of a multi-process run.")
flags.DEFINE_integer("process_id", int(os.environ["FASHIONNET_PROCESS_ID"])
                     if "FASHIONNET_PROCESS_ID" in os.environ else None,
                     "This process's index in a multi-process run.")
flags.DEFINE_bool("distributed", None,
                  "Force (True) or skip (False) jax.distributed.initialize(); default: "
                  "initialise when a coordinator is given or a TPU pod/SLURM job is detected.")
flags.mark_flags_as_required(["config", "workdir"])


def _multi_process_environment() -> bool:
  if FLAGS.coordinator_address:
    return True
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return True
  # Cloud TPU VMs: JAX reads the slice's workers from the metadata server;
  # initialising on a single-host slice is harmless.
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return (len([h for h in hosts.split(",") if h]) > 1 or os.path.exists("/dev/accel0")
          or os.path.exists("/dev/vfio/0") or "TPU_ACCELERATOR_TYPE" in os.environ)


def initialize_distributed():
  import jax
  wanted = FLAGS.distributed if FLAGS.distributed is not None else _multi_process_environment()
  if not wanted:
    return
  kwargs = {}
  if FLAGS.coordinator_address:
    kwargs = dict(coordinator_address=FLAGS.coordinator_address,
                  num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
    local = os.environ.get("FASHIONNET_LOCAL_DEVICE_IDS")
    if local:  # one process driving several GPUs of a node (launch/gpu/slurm_task.sh)
      kwargs["local_device_ids"] = [int(i) for i in local.split(",")]
  # Must not touch jax.devices() before initialize(): read the platform from the env.
  if os.environ.get("JAX_PLATFORMS", "").split(",")[0] == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = FLAGS.config
  if config.get("xla_flags"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + config.xla_flags).strip()
  from fashionnet_jax import train
  from fashionnet_jax.errors import ConfigError
  try:
    initialize_distributed()
    if FLAGS.mode == "train":
      train.train_and_evaluate(config, FLAGS.workdir)
    else:
      train.evaluate_checkpoint(config, FLAGS.workdir)
  except ConfigError as e:
    # A user mistake: one clear line, no traceback.
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except train.NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
