r"""The compiled train step's kernels and memory traffic, read off XLA's HLO: no GPU needed.

  python -m fashionnet_jax.benchmarks.hlo_audit --config=configs/gpu.py --target=h100
  python -m fashionnet_jax.benchmarks.hlo_audit --config=configs/gpu.py --target=h100 \
      --dump=/tmp/step.hlo --config.model.dtype=float32
  python -m fashionnet_jax.benchmarks.hlo_audit            # this machine's backend, demo config

Compiles the step `main` trains with (`training.step.jit_train_step`: sharded, state
donated) on abstract inputs, so no parameter is ever allocated. --target=h100
compiles devicelessly for an H100 SXM (jax.experimental.topologies with the
device description in benchmarks/targets/h100.pbtxt); it needs JAX's CUDA plugin,
not a GPU, driver or cuDNN: pip install "jax-cuda13-plugin==$(python -c 'import
jax; print(jax.__version__)')". Without autotuning XLA picks default conv
algorithms, so kernel choices are not measured ones; the program's structure
(which ops fuse, what each kernel reads and writes) is the GPU's.

Prints the kernels by kind (cuDNN convolutions by direction and fused
activation, GEMMs, reductions, elementwise fusions, transposes, copies) with the
bytes each moves, the largest memory-bound kernels, how many state buffers are
donated, XLA's memory estimate, and a roofline floor of the step: the analytic
FLOPs at --peak_tflops plus the memory-bound kernels' bytes at --bandwidth_gbs.
Predictions in benchmarks/NOTES.md come from comparing these numbers between
versions before a device run measures them. The last line is one JSON object.
"""

from __future__ import annotations

import os

from absl import flags
from ml_collections import config_flags

TARGETS_DIR = os.path.join(os.path.dirname(__file__), "targets")


def define_flags(argv) -> flags.FlagValues:
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file(
      "config",
      "configs/default.py",
      "Config file (configs/*.py).",
      flag_values=fv,
      sys_argv=list(argv),
  )
  flags.DEFINE_integer("batch", None, "Global batch size (default: the config's).", flag_values=fv)
  flags.DEFINE_string(
      "target",
      "local",
      "local: this machine's first device; or a file name in "
      "benchmarks/targets/ without .pbtxt (h100) for a deviceless GPU compile.",
      flag_values=fv,
  )
  flags.DEFINE_integer(
      "stage", 0, "Which stage's loss weights and group mask to compile with.", flag_values=fv
  )
  flags.DEFINE_float(
      "peak_tflops",
      799.0,
      "Matmul peak for the roofline (799: bf16 measured on the lent H100).",
      flag_values=fv,
  )
  flags.DEFINE_float(
      "bandwidth_gbs",
      3352.0,
      "Memory bandwidth for the roofline in GB/s (H100 SXM HBM3: 3352).",
      flag_values=fv,
  )
  flags.DEFINE_integer(
      "top", 12, "How many of the largest memory-bound kernels to list.", flag_values=fv
  )
  flags.DEFINE_string("dump", None, "Write the optimised HLO text here.", flag_values=fv)
  flags.DEFINE_string("label", "", "A name for this run, copied into the JSON.", flag_values=fv)
  return fv


def target_devices(target: str):
  """One device to compile for: this machine's, or a deviceless GPU from targets/<target>.pbtxt."""
  import jax

  if target == "local":
    return jax.devices()[:1]
  from fashionnet_jax.errors import ConfigError

  path = os.path.join(TARGETS_DIR, f"{target}.pbtxt")
  if not os.path.isfile(path):
    known = sorted(f[:-6] for f in os.listdir(TARGETS_DIR) if f.endswith(".pbtxt"))
    raise ConfigError(f"--target={target}: no {path}; known: local, {', '.join(known)}")
  from jax.experimental import topologies

  with open(path) as f:
    description = f.read()
  try:
    topology = topologies.get_topology_desc(
        target, "cuda", target_config=description, topology="1x1x1"
    )
  except (NotImplementedError, RuntimeError) as e:
    raise ConfigError(
        f"--target={target} compiles for a GPU without one but needs JAX's CUDA plugin: "
        f"pip install 'jax-cuda13-plugin=={jax.__version__}' ({type(e).__name__})"
    ) from e
  return topology.devices[:1]


def compile_step(config, devices, stage: int = 0):
  """The train step compiled for `devices` on abstract state and batch; (compiled, n_state_leaves)."""
  import jax
  from fashionnet_jax import sharding
  from fashionnet_jax.benchmarks.train_step import synthetic_batch
  from fashionnet_jax.errors import ConfigError
  from fashionnet_jax.models import create_model
  from fashionnet_jax.models.functional import abstract_graphdef
  from fashionnet_jax.training.checkpointing import abstract_like
  from fashionnet_jax.training.optim import make_optimizer
  from fashionnet_jax.training.schedule import Schedule
  from fashionnet_jax.training.step import abstract_train_state, jit_train_step

  mesh = sharding.create_mesh(config.mesh, devices)
  schedule = Schedule(config.stages, config.num_rounds)
  if not 0 <= stage < len(schedule.stages):
    raise ConfigError(f"--stage={stage}: the config has stages 0..{len(schedule.stages) - 1}")
  model_fn = lambda: create_model(config.model, seed=0)
  tx = make_optimizer(config, schedule.total_steps)
  state = abstract_train_state(model_fn, tx, 0)
  state_shardings = sharding.state_shardings(mesh, state)
  step = jit_train_step(config, abstract_graphdef(model_fn), tx, state_shardings, mesh)
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  spec = lambda tree, shard: abstract_like(tree, jax.tree.map(lambda _: shard, tree))
  weights, mask = schedule.stages[stage].loss_weights, schedule.stages[stage].group_mask
  num_attributes = int(config.model.num_attributes)
  aux = dict(
      w_pos=jax.ShapeDtypeStruct((num_attributes,), "float32"),
      w_neg=jax.ShapeDtypeStruct((num_attributes,), "float32"),
  )
  lowered = step.lower(
      abstract_like(state, state_shardings),
      spec(synthetic_batch(config, int(config.batch_size)), batch_sharding),
      spec(weights, repl),
      spec(mask, repl),
      spec(aux, repl),
  )
  return lowered.compile(), len(jax.tree.leaves(state))


def _memory(compiled) -> dict:
  try:
    stats = compiled.memory_analysis()
  except Exception:  # deviceless or CPU executables may not report it
    return {}
  if stats is None:
    return {}
  fields = (
      "argument_size_in_bytes",
      "output_size_in_bytes",
      "alias_size_in_bytes",
      "temp_size_in_bytes",
      "generated_code_size_in_bytes",
  )
  return {f: int(getattr(stats, f)) for f in fields if hasattr(stats, f)}


def audit(
    config,
    target="local",
    stage=0,
    peak_tflops=799.0,
    bandwidth_gbs=3352.0,
    top=12,
    dump=None,
    log=print,
) -> dict:
  """Compiles, reads the HLO, prints the tables; returns the figures."""
  from fashionnet_jax.benchmarks import flops, hlo_census

  devices = target_devices(target)
  compiled, n_state_leaves = compile_step(config, devices, stage)
  text = compiled.as_text()
  if dump:
    with open(dump, "w") as f:
      f.write(text)
  ops = hlo_census.census(text)
  summary = hlo_census.summarise(ops)
  batch = int(config.batch_size)
  analytic = flops.train_flops_per_image(config.model, int(config.image_size)) * batch
  compute_bound = ("convolution", "matmul")
  memory_bytes = sum(op.bytes for op in ops if op.kind not in compute_bound)
  bandwidth = bandwidth_gbs * 1e9
  results = dict(
      target=target,
      device=str(getattr(devices[0], "device_kind", devices[0])),
      batch=batch,
      image_size=int(config.image_size),
      dtype=config.model.dtype,
      backbone=config.model.backbone,
      **summary,
      memory_bound_bytes=memory_bytes,
      analytic_flops_per_step=float(analytic),
      conv_flops_per_step=sum(op.flops for op in ops if op.kind == "convolution"),
      memory_bound_ms=round(memory_bytes / bandwidth * 1e3, 5),
      compute_ms=round(analytic / (peak_tflops * 1e12) * 1e3, 5),
      donated_outputs=hlo_census.donated_outputs(text),
      state_leaves=n_state_leaves,
      memory=_memory(compiled),
  )
  results["roofline_floor_ms"] = round(results["memory_bound_ms"] + results["compute_ms"], 5)
  results["roofline_images_per_s"] = round(batch / results["roofline_floor_ms"] * 1e3, 1)

  log(
      f"{target} ({results['device']}), batch {batch}, {config.model.backbone} "
      f"{config.model.dtype}: {summary['kernels']} kernels"
  )
  log(f"  {'kind':<16}{'kernels':>8}{'GB moved':>10}{'ms at BW':>10}")
  for kind, row in summary["by_kind"].items():
    if row["kernels"]:
      log(
          f"  {kind:<16}{row['kernels']:>8}{row['bytes'] / 1e9:>10.3f}"
          f"{row['bytes'] / bandwidth * 1e3:>10.3f}"
      )
  log("  convolutions: " + ", ".join(f"{k} ×{v}" for k, v in summary["convolutions"].items()))
  log(
      f"largest memory-bound kernels (of {memory_bytes / 1e9:.2f} GB, "
      f"{results['memory_bound_ms']:.2f} ms at {bandwidth_gbs:.0f} GB/s):"
  )
  heavy = sorted((op for op in ops if op.kind not in compute_bound), key=lambda op: -op.bytes)
  for op in heavy[:top]:
    log(f"  {op.bytes / 1e6:>9.1f} MB  {op.kind:<12} {op.name:<36} {op.op_name[-60:]}")
  log(
      f"donated: {results['donated_outputs']} outputs alias inputs "
      f"({n_state_leaves} state leaves)"
  )
  log(
      f"roofline floor: {results['compute_ms']:.2f} ms compute ({analytic / 1e12:.2f} TFLOP at "
      f"{peak_tflops:.0f} TFLOP/s) + {results['memory_bound_ms']:.2f} ms memory-bound = "
      f"{results['roofline_floor_ms']:.2f} ms ({results['roofline_images_per_s']:.0f} images/s)"
  )
  return results


def main(argv=None):
  from fashionnet_jax.benchmarks.train_step import benchmark_config, parse_flags, print_results

  FLAGS, config = parse_flags(define_flags, argv, __doc__)
  if FLAGS is None:
    return None
  if FLAGS.target != "local":
    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")  # no GPU, no cuDNN here
  return print_results(
      FLAGS.label,
      lambda: audit(
          benchmark_config(config, FLAGS.batch),
          FLAGS.target,
          FLAGS.stage,
          FLAGS.peak_tflops,
          FLAGS.bandwidth_gbs,
          FLAGS.top,
          FLAGS.dump,
      ),
  )


if __name__ == "__main__":
  main()
