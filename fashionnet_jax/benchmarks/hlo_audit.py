r"""The compiled train step's kernels and memory traffic, read off XLA's HLO: no GPU needed.

  python -m fashionnet_jax.benchmarks.hlo_audit --config=configs/gpu.py --target=h100
  python -m fashionnet_jax.benchmarks.hlo_audit --config=configs/gpu.py --target=h100 \
      --dump=/tmp/step.hlo --config.model.dtype=float32
  python -m fashionnet_jax.benchmarks.hlo_audit            # this machine's backend, demo config
  python -m fashionnet_jax.benchmarks.hlo_audit --config=configs/tpu_v3.py --target=tpu-v3-8 [--fit]

Compiles the step `main` trains with (`training.step.jit_train_step`: sharded, state
donated) on abstract inputs, so no parameter is ever allocated. --target=h100
compiles devicelessly for an H100 SXM (jax.experimental.topologies with the
device description in benchmarks/targets/h100.pbtxt); it needs JAX's CUDA plugin,
not a GPU, driver or cuDNN: pip install "jax-cuda13-plugin==$(python -c 'import
jax; print(jax.__version__)')". Without autotuning XLA picks default conv
algorithms, so kernel choices are not measured ones; the program's structure
(which ops fuse, what each kernel reads and writes) is the GPU's.

--target=tpu-v3-8 (tpu-v4-8, tpu-v5e-8) compiles for every device of that slice
over the config's mesh, with its global batch, on libtpu's deviceless topology
(pip install -e '.[tpu-audit]'; no TPU needed), and prints per device (a v3
core; a v4 megacore chip; a v5e chip) what XLA:TPU reports: memory against its
HBM, FLOPs, bytes accessed, the collectives, and a roofline floor at the chip's
published bf16 peak and HBM bandwidth (TPU_TARGETS). --fit also searches the
largest batch per device that fits.

For GPUs prints the kernels by kind (cuDNN convolutions by direction and fused
activation, GEMMs, reductions, elementwise fusions, transposes, copies) with the
bytes each moves, the largest memory-bound kernels, how many state buffers are
donated, XLA's memory estimate, and a roofline floor of the step: the analytic
FLOPs at --peak_tflops plus the memory-bound kernels' bytes at --bandwidth_gbs.
Predictions in benchmarks/NOTES.md come from comparing these numbers between
versions before a device run measures them. The last line is one JSON object.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re

from absl import flags

TARGETS_DIR = os.path.join(os.path.dirname(__file__), "targets")
H100_PEAK_TFLOPS, H100_BANDWIDTH_GBS = 799.0, 3352.0  # bf16 measured on the lent card; HBM3


@dataclasses.dataclass(frozen=True)
class TpuTarget:
  """A Cloud TPU slice as libtpu's deviceless topology, and one device's published figures.

  A device is what JAX shards over: a v3 core (2 per chip), a v4 chip (its 2 cores
  as one megacore device), a v5e chip (1 core). Figures per chip from the Cloud
  TPU docs (cloud.google.com/tpu/docs/v3, /v4, /v5e, "Key specifications"),
  divided by the devices per chip.
  """

  topology: str  # get_topology_desc's topology_name
  chip_config: str  # "default", or "megacore" for v4
  chips_per_host: tuple[int, int, int]
  accelerator_type: str  # TPU_ACCELERATOR_TYPE, so that libtpu does not ask the metadata server
  hbm_gib: float  # per device
  peak_tflops: float  # bf16, per device
  bandwidth_gbs: float  # HBM, per device


TPU_TARGETS = {
    # v3: 123 TFLOP/s bf16, 32 GiB HBM2 at 900 GB/s per chip of 2 cores.
    "tpu-v3-8": TpuTarget("v3:2x2", "default", (2, 2, 1), "v3-8", 16.0, 61.5, 450.0),
    # v4: 275 TFLOP/s bf16, 32 GiB HBM2 at 1200 GB/s per chip (megacore: one device).
    "tpu-v4-8": TpuTarget("v4:2x2x1", "megacore", (2, 2, 1), "v4-8", 32.0, 275.0, 1200.0),
    # v5e: 197 TFLOP/s bf16, 16 GB HBM2 at 819 GB/s per chip of 1 core.
    "tpu-v5e-8": TpuTarget("v5e:2x4", "default", (2, 4, 1), "v5litepod-8", 16.0, 197.0, 819.0),
}


def define_flags(argv) -> flags.FlagValues:
  from fashionnet_jax.cli import benchmark_flag_values

  fv = benchmark_flag_values(argv)
  flags.DEFINE_string(
      "target",
      "local",
      "local: this machine's first device; a file name in benchmarks/targets/ without "
      ".pbtxt (h100) for a deviceless GPU compile; or a TPU slice: "
      + ", ".join(TPU_TARGETS)
      + " (deviceless, needs libtpu).",
      flag_values=fv,
  )
  flags.DEFINE_integer(
      "stage", 0, "Which stage's loss weights and group mask to compile with.", flag_values=fv
  )
  flags.DEFINE_float(
      "peak_tflops",
      None,
      "Matmul peak for the roofline, per device (default: 799, bf16 measured on the lent "
      "H100; a TPU target's published bf16 peak).",
      flag_values=fv,
  )
  flags.DEFINE_float(
      "bandwidth_gbs",
      None,
      "Memory bandwidth for the roofline in GB/s, per device (default: H100 SXM HBM3 "
      "3352; a TPU target's published HBM bandwidth).",
      flag_values=fv,
  )
  flags.DEFINE_bool(
      "fit",
      False,
      "TPU targets: also search the largest batch per device whose step fits in HBM.",
      flag_values=fv,
  )
  flags.DEFINE_integer(
      "top", 12, "How many of the largest memory-bound kernels to list.", flag_values=fv
  )
  flags.DEFINE_string("dump", None, "Write the optimised HLO text here.", flag_values=fv)
  flags.DEFINE_string("label", "", "A name for this run, copied into the JSON.", flag_values=fv)
  return fv


def tpu_devices(target: str):
  """Every device of a TPU slice, deviceless (libtpu's topology, compiled for on the CPU)."""
  import jax
  from fashionnet_jax.errors import ConfigError

  spec = TPU_TARGETS[target]
  # libtpu reads these when it loads: without them it asks for a metadata server and logs errors.
  os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
  os.environ.setdefault("TPU_ACCELERATOR_TYPE", spec.accelerator_type)
  os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
  if not jax.config.jax_platforms:
    try:  # compile for the TPU, run nothing on one
      jax.config.update("jax_platforms", "cpu")
    except RuntimeError:  # backends already started: they stay as they are
      pass
  from jax.experimental import topologies

  try:
    topology = topologies.get_topology_desc(
        platform="tpu",
        topology_name=spec.topology,
        chip_config_name=spec.chip_config,
        chips_per_host_bounds=spec.chips_per_host,
        num_slices=1,
    )
  except (NotImplementedError, RuntimeError, ValueError) as e:
    raise ConfigError(
        f"--target={target} compiles for a TPU without one but needs libtpu: "
        f"pip install -e '.[tpu-audit]' ({type(e).__name__})"
    ) from e
  return topology.devices


def target_devices(target: str):
  """The devices to compile for: this machine's first, a deviceless GPU from
  targets/<target>.pbtxt, or every device of a TPU slice (TPU_TARGETS)."""
  import jax

  if target == "local":
    return jax.devices()[:1]
  if target in TPU_TARGETS:
    return tpu_devices(target)
  from fashionnet_jax.errors import ConfigError

  path = os.path.join(TARGETS_DIR, f"{target}.pbtxt")
  if not os.path.isfile(path):
    known = sorted(f[:-6] for f in os.listdir(TARGETS_DIR) if f.endswith(".pbtxt"))
    raise ConfigError(
        f"--target={target}: no {path}; known: local, {', '.join(known + list(TPU_TARGETS))}"
    )
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
  """The train step compiled for `devices` on abstract state and batch; (compiled, the
  abstract train state)."""
  import jax
  from fashionnet_jax import sharding
  from fashionnet_jax.benchmarks.train_step import synthetic_batch
  from fashionnet_jax.errors import ConfigError
  from fashionnet_jax.models.functional import abstract_graphdef
  from fashionnet_jax.training.checkpointing import abstract_like
  from fashionnet_jax.training.optim import make_optimizer
  from fashionnet_jax.training.runs import model_fn as config_model_fn
  from fashionnet_jax.training.schedule import Schedule
  from fashionnet_jax.training.step import abstract_train_state, jit_train_step

  # As TrainSetup builds it, without allocating: its mesh, batch check, model, optimiser.
  mesh = sharding.create_mesh(config.mesh, devices)
  sharding.check_batch_size(int(config.batch_size), mesh)
  schedule = Schedule(config.stages, config.num_rounds)
  if not 0 <= stage < len(schedule.stages):
    raise ConfigError(f"--stage={stage}: the config has stages 0..{len(schedule.stages) - 1}")
  model_fn = config_model_fn(config)
  tx = make_optimizer(config, schedule.total_steps)
  state = abstract_train_state(model_fn, tx, int(config.seed))
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
  return lowered.compile(), state


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


def peak_memory_bytes(memory: dict) -> int:
  """A device's peak from XLA's memory analysis: arguments + outputs not aliased to them
  (donation) + temporaries + the program itself (TPUs hold their code in HBM)."""
  return (
      memory.get("argument_size_in_bytes", 0)
      + memory.get("output_size_in_bytes", 0)
      - memory.get("alias_size_in_bytes", 0)
      + memory.get("temp_size_in_bytes", 0)
      + memory.get("generated_code_size_in_bytes", 0)
  )


COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def collectives(hlo_text: str) -> list[dict]:
  """The cross-device ops of the step (async ones once, at their start), with their bytes."""
  from fashionnet_jax.benchmarks import hlo_census

  out = []
  for op in hlo_census.census(hlo_text):
    opcode = op.opcode.removesuffix("-start")
    if opcode in COLLECTIVES:
      shape = re.sub(r"\{[^}]*\}|/\*[^*]*\*/", "", op.shape)  # without layouts, comments
      out.append(dict(op=opcode, shape=shape, bytes=op.bytes_out, source=op.op_name))
  return out


def _write(path, text):
  if path:
    with open(path, "w") as f:
      f.write(text)


def tpu_figures(config, target, devices, stage=0, peak_tflops=None, bandwidth_gbs=None, dump=None):
  """The step compiled for a TPU slice, per device: memory, cost, collectives, roofline."""
  import jax
  from fashionnet_jax import sharding
  from fashionnet_jax.benchmarks import flops, hlo_census
  from fashionnet_jax.benchmarks.train_step import xla_cost

  spec = TPU_TARGETS[target]
  peak_tflops = peak_tflops or spec.peak_tflops
  bandwidth_gbs = bandwidth_gbs or spec.bandwidth_gbs
  compiled, state = compile_step(config, devices, stage)
  text = compiled.as_text()
  _write(dump, text)
  memory, cost = _memory(compiled), xla_cost(compiled)
  batch, n = int(config.batch_size), len(devices)
  per_device = batch // n
  peak = peak_memory_bytes(memory)
  xla_flops, accessed = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
  analytic = flops.train_flops_per_image(config.model, int(config.image_size)) * per_device
  compute_ms = xla_flops / (peak_tflops * 1e12) * 1e3
  memory_ms = accessed / (bandwidth_gbs * 1e9) * 1e3
  floor_ms = max(compute_ms, memory_ms)  # neither unit can beat its own bound
  return dict(
      target=target,
      device=str(devices[0].device_kind),
      devices=n,
      mesh=dict(sharding.create_mesh(config.mesh, devices).shape),
      batch=batch,
      batch_per_device=per_device,
      image_size=int(config.image_size),
      dtype=config.model.dtype,
      backbone=config.model.backbone,
      memory=memory,
      peak_memory_bytes=peak,
      hbm_bytes=int(spec.hbm_gib * 2**30),
      fits=peak <= spec.hbm_gib * 2**30,
      xla_flops_per_device=xla_flops,
      analytic_flops_per_device=float(analytic),
      bytes_accessed_per_device=accessed,
      collectives=collectives(text),
      param_bytes=sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params)),
      donated_outputs=hlo_census.donated_outputs(text),
      state_leaves=len(jax.tree.leaves(state)),
      peak_tflops=peak_tflops,
      bandwidth_gbs=bandwidth_gbs,
      compute_ms=round(compute_ms, 4),
      memory_ms=round(memory_ms, 4),
      roofline_floor_ms=round(floor_ms, 4),
      roofline_images_per_s_per_device=round(per_device / floor_ms * 1e3, 1),
  )


def print_tpu(results: dict, log=print):
  """The per-device table of tpu_figures."""
  r, gib = results, 2**30
  spec = TPU_TARGETS[r["target"]]
  log(
      f"{r['target']} ({r['devices']} x {r['device']}, mesh data={r['mesh']['data']} "
      f"model={r['mesh']['model']}): batch {r['batch']} = {r['batch_per_device']} per device, "
      f"{r['backbone']} {r['dtype']}, {r['image_size']} px"
  )
  mem = r["memory"]
  log("  per device (XLA memory analysis)       GiB")
  for label, key in (
      ("arguments (state + batch)", "argument_size_in_bytes"),
      ("outputs", "output_size_in_bytes"),
      ("  of which alias arguments (donated)", "alias_size_in_bytes"),
      ("temporaries (activations, gradients)", "temp_size_in_bytes"),
      ("program", "generated_code_size_in_bytes"),
  ):
    log(f"  {label:<38}{mem.get(key, 0) / gib:>7.2f}")
  log(
      f"  {'peak':<38}{r['peak_memory_bytes'] / gib:>7.2f}  of {spec.hbm_gib:g} GiB HBM "
      f"({r['peak_memory_bytes'] / r['hbm_bytes']:.0%}): {'fits' if r['fits'] else 'DOES NOT FIT'}"
  )
  log(
      f"  FLOPs per device: {r['xla_flops_per_device'] / 1e12:.3f} TFLOP (XLA; analytic "
      f"{r['analytic_flops_per_device'] / 1e12:.3f}); bytes accessed "
      f"{r['bytes_accessed_per_device'] / 1e9:.2f} GB"
  )
  log(
      f"  collectives ({len(r['collectives'])}; the parameters are {r['param_bytes'] / 1e6:.2f} MB):"
  )
  small = [c for c in r["collectives"] if c["bytes"] < 1e6]  # losses' sums, BatchNorm statistics
  for c in r["collectives"]:
    if c not in small:
      log(
          f"    {c['op']:<14}{c['bytes'] / 1e6:>10.3f} MB  {c['shape'][:40]:<42}{c['source'][-50:]}"
      )
  if small:
    kinds = collections.Counter(c["op"] for c in small)
    log(
        f"    and {len(small)} under 1 MB ({sum(c['bytes'] for c in small) / 1e6:.3f} MB in all): "
        + ", ".join(f"{op} x{n}" for op, n in sorted(kinds.items()))
    )
  log(f"  donated: {r['donated_outputs']} outputs alias inputs ({r['state_leaves']} state leaves)")
  log(
      f"  roofline floor per device: max({r['compute_ms']:.2f} ms of FLOPs at "
      f"{r['peak_tflops']:g} TFLOP/s, {r['memory_ms']:.2f} ms of bytes at "
      f"{r['bandwidth_gbs']:g} GB/s) = {r['roofline_floor_ms']:.2f} ms: "
      f"{r['roofline_images_per_s_per_device']:.0f} images/s per device, "
      f"{r['roofline_images_per_s_per_device'] * r['devices']:.0f} per slice (predicted)"
  )


def out_of_memory(error: Exception) -> bool:
  """Whether a compile failed because the step does not fit in the device's memory."""
  text = str(error)
  return "RESOURCE_EXHAUSTED" in text or "Ran out of memory" in text


def largest_batch(config, target, devices, stage=0, start=None, log=print) -> int:
  """The largest batch per device whose step fits in HBM (0: not even 1), by bisection on
  deviceless compiles: doubling from `start` (default the config's) until one does not fit."""
  import jax

  n, cache = len(devices), {}

  def fits(per_device):
    if per_device not in cache:
      trial = config.copy_and_resolve_references()
      trial.batch_size = per_device * n
      try:
        compiled, _ = compile_step(trial, devices, stage)
        peak = peak_memory_bytes(_memory(compiled))
        cache[per_device] = peak <= TPU_TARGETS[target].hbm_gib * 2**30
        jax.clear_caches()  # each trial is a new program: do not keep the old ones
      except Exception as e:  # XLA:TPU refuses a program that overflows HBM
        if not out_of_memory(e):
          raise
        peak, cache[per_device] = None, False
      shown = f"{peak / 2**30:.2f} GiB" if peak is not None else "out of memory at compile"
      log(f"  fit: {per_device} per device: {shown}: {'fits' if cache[per_device] else 'no'}")
    return cache[per_device]

  low, high = 0, max(1, start or int(config.batch_size) // n)
  while fits(high):  # double until one does not fit
    low, high = high, high * 2
  while high - low > 1:  # low fits (or is 0), high does not
    mid = (low + high) // 2
    low, high = (mid, high) if fits(mid) else (low, mid)
  return low


def audit(
    config,
    target="local",
    stage=0,
    peak_tflops=None,
    bandwidth_gbs=None,
    top=12,
    dump=None,
    log=print,
    fit=False,
) -> dict:
  """Compiles, reads the HLO, prints the tables; returns the figures. `fit` (TPU
  targets): also the largest batch per device that fits (largest_batch)."""
  import jax
  from fashionnet_jax.benchmarks import flops, hlo_census

  devices = target_devices(target)
  if target in TPU_TARGETS:
    results = tpu_figures(config, target, devices, stage, peak_tflops, bandwidth_gbs, dump)
    print_tpu(results, log)
    if fit:
      results["largest_batch_per_device"] = largest_batch(
          config, target, devices, stage, results["batch_per_device"], log
      )
      log(f"largest batch per device that fits: {results['largest_batch_per_device']}")
    return results
  peak_tflops = peak_tflops or H100_PEAK_TFLOPS
  bandwidth_gbs = bandwidth_gbs or H100_BANDWIDTH_GBS
  compiled, state = compile_step(config, devices, stage)
  n_state_leaves = len(jax.tree.leaves(state))
  text = compiled.as_text()
  _write(dump, text)
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
  if FLAGS.target not in ("local", *TPU_TARGETS):
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
          fit=FLAGS.fit,
      ),
  )


if __name__ == "__main__":
  main()
