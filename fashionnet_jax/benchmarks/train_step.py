r"""Train-step throughput of FashionNet: images/s, step time, MFU, memory, pooling share.

  python -m fashionnet_jax.benchmarks.train_step --config=configs/gpu.py [--batch 128]
  python -m fashionnet_jax.benchmarks.train_step --config=configs/gpu.py --input=pipeline
  python -m fashionnet_jax.benchmarks.train_step            # CPU: configs/default.py

Compiles the train step `main` uses (`TrainSetup.step_fn`, sharded and donated) once
(compile time reported apart) and times --steps steps after --warmup steps, with
`jax.block_until_ready` only around the whole loop. Inputs are a device-resident
synthetic batch; with --input=pipeline also the real grain pipeline over
synthetic DeepFashion (built under --data_dir on first use), fed through
`TrainSetup.global_batch` as in training. FLOPs per step come from XLA's cost
analysis of the compiled step (plus the cuDNN convolutions it does not see, read
off the optimised HLO by benchmarks/hlo_census.py) and, independently, from the
analytic count in `benchmarks/flops.py`; MFU is reported against --peak_tflops (spec) and against
a bf16 matmul peak measured here. The landmark pooling's share of the step is
its jitted forward+backward at the step's shapes over the step time.
Any ml_collections override works: --config.model.backbone=resnet50 etc.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
from absl import flags

from fashionnet_jax.cli import benchmark_flag_values, config_flag, parse_absl_flags
from fashionnet_jax.errors import ConfigError, one_line


def define_flags(argv) -> flags.FlagValues:
  """The command line's flags, in a FlagValues of our own (cli.benchmark_flag_values)."""
  fv = benchmark_flag_values(argv)
  flags.DEFINE_integer("steps", 20, "Timed steps.", flag_values=fv)
  flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.", flag_values=fv)
  flags.DEFINE_enum(
      "input",
      "synthetic",
      ["synthetic", "pipeline"],
      "synthetic: device-resident batches only; pipeline: also the grain pipeline.",
      flag_values=fv,
  )
  flags.DEFINE_string(
      "data_dir",
      "/tmp/fashionnet_bench_tfds",
      "TFDS data dir for --input=pipeline (synthetic DeepFashion built on first " "use).",
      flag_values=fv,
  )
  flags.DEFINE_integer(
      "num_devices", 0, "Use the first N devices (0: all, as training does).", flag_values=fv
  )
  flags.DEFINE_float(
      "peak_tflops",
      989.0,
      "Spec peak per device for MFU (H100 SXM dense bf16: 989).",
      flag_values=fv,
  )
  flags.DEFINE_integer(
      "matmul_size",
      0,
      "Side of the bf16 matmul that measures the peak; 0: 8192 on accelerators, "
      "1024 on CPU; -1: skip.",
      flag_values=fv,
  )
  flags.DEFINE_integer("pooling_iters", 20, "Timed calls of the landmark pooling.", flag_values=fv)
  flags.DEFINE_string("label", "", "A name for this run, copied into the JSON.", flag_values=fv)
  flags.DEFINE_string(
      "profile_dir", None, "Write a jax.profiler trace of a few steps here.", flag_values=fv
  )
  return fv


def synthetic_batch(config, batch_size, seed=0):
  """A host batch in the input pipeline's contract (random, well-formed; items in pairs)."""
  import numpy as np

  rng = np.random.default_rng(seed)
  b, s, m = batch_size, int(config.image_size), config.model
  if config.input.get("normalize_on_device", False):  # uint8, as the pipeline sends them
    image = rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8)
  else:
    image = rng.normal(size=(b, s, s, 3)).astype(np.float32)
  return dict(
      image=image,
      landmarks=rng.uniform(size=(b, int(m.num_landmarks), 2)).astype(np.float32),
      landmark_visibility=rng.integers(0, 4, (b, int(m.num_landmarks))).astype(np.int32),
      category=rng.integers(0, int(m.num_categories), b).astype(np.int32),
      attributes=rng.choice(np.array([-1, 0, 1], np.int8), (b, int(m.num_attributes))),
      clothes_type=rng.integers(0, 3, b).astype(np.int32),
      item=(np.arange(b) // 2).astype(np.int32),
      mask=np.ones(b, bool),
  )


def xla_cost(compiled) -> dict:
  """XLA's cost analysis of a compiled program (a dict, or a list of one per program)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return dict(cost or {})


def time_loop(step, state, next_batch, steps):
  """Seconds per step over `steps` calls, synchronised once at the end; returns (s, state)."""
  start = time.perf_counter()
  out = None
  for _ in range(steps):
    state, out = step(state, next_batch())
  jax.block_until_ready((state, out))
  return (time.perf_counter() - start) / steps, state


def matmul_peak_tflops(size, iters=10):
  """Achieved TFLOP/s of a size³ bf16 matmul on the default device (the torch reference's test)."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.bfloat16)
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.bfloat16)
  matmul = jax.jit(jnp.matmul).lower(a, b).compile()
  for _ in range(3):
    out = matmul(a, b)
  jax.block_until_ready(out)
  start = time.perf_counter()
  for _ in range(iters):
    out = matmul(a, b)
  jax.block_until_ready(out)
  return 2 * size**3 / ((time.perf_counter() - start) / iters) / 1e12


def pooling_seconds(config, per_device_batch, iters):
  """Forward+backward of landmark_pool alone at the step's conv5 shape and dtype, one device."""
  import numpy as np
  from fashionnet_jax.benchmarks import flops
  from fashionnet_jax.benchmarks.landmark_pooling import time_fwd_bwd
  from fashionnet_jax.models.landmark_pooling import landmark_pool

  size, channels = flops.conv5_shape(config.model, int(config.image_size))
  rng = np.random.default_rng(0)
  landmarks_n = int(config.model.num_landmarks)
  features = jnp.asarray(
      rng.normal(size=(per_device_batch, size, size, channels)), config.model.dtype
  )
  landmarks = jnp.asarray(rng.uniform(size=(per_device_batch, landmarks_n, 2)), jnp.float32)
  visible = jnp.asarray(rng.uniform(size=(per_device_batch, landmarks_n)) > 0.2)
  seconds, _, _ = time_fwd_bwd(
      landmark_pool, features, landmarks, visible, int(config.model.pooling_window), iters
  )
  return seconds, (per_device_batch, size, size, channels)


def peak_memory_bytes():
  """Largest 'peak_bytes_in_use' over local devices; None where unsupported (CPU)."""
  peaks = []
  for device in jax.local_devices():
    stats = device.memory_stats()
    if stats and "peak_bytes_in_use" in stats:
      peaks.append(int(stats["peak_bytes_in_use"]))
  return max(peaks) if peaks else None


def _versions():
  import flax
  import jaxlib

  device = jax.devices()[0]
  return dict(
      jax=jax.__version__,
      jaxlib=jaxlib.__version__,
      flax=flax.__version__,
      platform=device.platform,
      device=device.device_kind,
      platform_version=getattr(device.client, "platform_version", None),
      xla_flags=os.environ.get("XLA_FLAGS", ""),
  )


def benchmark_config(config, batch=None, input_mode="synthetic", data_dir=None):
  """The config the benchmark trains: --batch applied; nothing that needs a dataset
  unless the pipeline is measured (attribute weights are data to the step: the
  all-ones weights cost the same as the dataset's)."""
  from fashionnet_jax.training.config_checks import INIT_FROM_SCRATCH

  config = config.copy_and_resolve_references()
  if batch is not None:
    config.batch_size = int(batch)
  config.loss.attribute_weighting = False
  config.init_from = INIT_FROM_SCRATCH  # speed does not depend on the weights
  if input_mode == "pipeline":
    config.dataset.data_dir = data_dir
    config.dataset.synthetic_if_missing = True
  return config


def run(
    config,
    *,
    steps=20,
    warmup=3,
    input_mode="synthetic",
    peak_tflops=989.0,
    matmul_size=0,
    pooling_iters=20,
    profile_dir=None,
    num_devices=0,
    log=print,
) -> dict:
  """Measures the train step of `config` (see the module docstring); returns the figures."""
  import tempfile
  from fashionnet_jax.training.train_setup import TrainSetup
  from fashionnet_jax.benchmarks import flops, hlo_census

  batch_size = int(config.batch_size)
  iterator = None
  if input_mode == "pipeline":
    from fashionnet_jax.data import pipeline
    from fashionnet_jax.data.prepare import ensure_dataset

    ensure_dataset(config)
    iterator = pipeline.create_train_iterator(config)
    # The device-resident batch is a pipeline batch too (same keys, same program).
    host_batch = next(iterator)
  else:
    host_batch = synthetic_batch(config, batch_size)
  devices = jax.devices()[:num_devices] if num_devices > 0 else None
  setup = TrainSetup(config, tempfile.gettempdir(), devices)
  n_devices = setup.mesh.devices.size
  weights, mask = setup.stage_arrays(0)
  batch = setup.global_batch(host_batch)
  results = dict(
      _versions(),
      num_devices=n_devices,
      batch=batch_size,
      image_size=int(config.image_size),
      backbone=config.model.backbone,
      dtype=config.model.dtype,
      width_multiplier=float(config.model.width_multiplier),
      steps=steps,
  )

  start = time.perf_counter()
  compiled = setup.step_fn.lower(setup.state, batch, weights, mask, setup.aux).compile()
  results["compile_s"] = round(time.perf_counter() - start, 3)
  cost = xla_cost(compiled)
  # The compiled module is one device's program (SPMD): × devices gives the step's
  # FLOPs, replicated work (the optimiser update) counted once per device.
  # XLA's cost analysis skips convolutions lowered to cuDNN custom calls (GPU):
  # their FLOPs are read off the optimised HLO's shapes and added.
  hlo_text = compiled.as_text()
  custom_convs = sum(
      op.flops
      for op in hlo_census.census(hlo_text)
      if op.kind == "convolution" and op.opcode == "custom-call"
  )
  results["cudnn_conv_flops_per_step"] = custom_convs * n_devices
  results["xla_flops_per_step"] = (float(cost.get("flops", 0.0)) + custom_convs) * n_devices
  results["analytic_flops_per_step"] = float(
      flops.train_flops_per_image(config.model, int(config.image_size)) * batch_size
  )
  results["xla_over_analytic"] = round(
      results["xla_flops_per_step"] / results["analytic_flops_per_step"], 4
  )
  results["xla_bytes_accessed_per_step"] = float(cost.get("bytes accessed", 0.0)) * n_devices
  log(
      f"compiled in {results['compile_s']:.1f} s; FLOPs per step: XLA "
      f"{results['xla_flops_per_step'] / 1e9:.2f} G, analytic "
      f"{results['analytic_flops_per_step'] / 1e9:.2f} G (ratio {results['xla_over_analytic']})"
  )

  step = lambda state, b: compiled(state, b, weights, mask, setup.aux)
  state = setup.state
  for _ in range(warmup):
    state, _ = step(state, batch)
  jax.block_until_ready(state)
  seconds, state = time_loop(step, state, lambda: batch, steps)
  results["step_ms"] = round(seconds * 1e3, 3)
  results["images_per_s"] = round(batch_size / seconds, 2)
  results["peak_memory_bytes"] = peak_memory_bytes()
  log(f"device-resident: {results['step_ms']:.2f} ms/step, {results['images_per_s']:.1f} images/s")

  if profile_dir:
    os.makedirs(profile_dir, exist_ok=True)
    with open(os.path.join(profile_dir, "step.hlo"), "w") as f:  # profile_summary joins on it
      f.write(hlo_text)
    results["profile_steps"] = min(steps, 5)
    with jax.profiler.trace(profile_dir):
      _, state = time_loop(step, state, lambda: batch, results["profile_steps"])
    results["profile_dir"] = profile_dir

  if iterator is not None:
    next_batch = lambda: setup.global_batch(next(iterator))
    for _ in range(max(warmup, 1)):  # worker start-up and the first batches
      state, _ = step(state, next_batch())
    jax.block_until_ready(state)
    seconds, state = time_loop(step, state, next_batch, steps)
    results["pipeline_step_ms"] = round(seconds * 1e3, 3)
    results["pipeline_images_per_s"] = round(batch_size / seconds, 2)
    # Fraction of device-resident throughput lost to the input pipeline.
    results["pipeline_cost"] = round(
        1 - results["pipeline_images_per_s"] / results["images_per_s"], 4
    )
    log(
        f"grain pipeline: {results['pipeline_step_ms']:.2f} ms/step, "
        f"{results['pipeline_images_per_s']:.1f} images/s (cost {results['pipeline_cost']:.1%})"
    )
  setup.state = state  # the old buffers were donated

  step_s = results["step_ms"] / 1e3
  achieved = results["xla_flops_per_step"] / step_s / 1e12
  results["achieved_tflops"] = round(achieved, 4)
  results["achieved_tflops_analytic"] = round(results["analytic_flops_per_step"] / step_s / 1e12, 4)
  results["peak_tflops_spec"] = peak_tflops
  results["mfu"] = round(achieved / (peak_tflops * n_devices), 6)
  results["mfu_analytic"] = round(
      results["achieved_tflops_analytic"] / (peak_tflops * n_devices), 6
  )
  if matmul_size == 0:
    matmul_size = 1024 if jax.devices()[0].platform == "cpu" else 8192
  results["peak_tflops_measured"] = None
  if matmul_size > 0:
    measured = matmul_peak_tflops(matmul_size)
    results["peak_tflops_measured"] = round(measured, 3)
    results["matmul_size"] = matmul_size
    results["mfu_measured_peak"] = round(achieved / (measured * n_devices), 6)
    results["mfu_analytic_measured_peak"] = round(
        results["achieved_tflops_analytic"] / (measured * n_devices), 6
    )
  log(
      f"MFU {results['mfu']:.2%} of {peak_tflops} TFLOP/s (spec)"
      + (
          f", {results['mfu_measured_peak']:.2%} of {results['peak_tflops_measured']} TFLOP/s "
          f"(measured bf16 matmul, {matmul_size}³)"
          if matmul_size > 0
          else ""
      )
  )

  if config.model.get("use_landmark_branch", True):
    pool_s, shape = pooling_seconds(config, batch_size // n_devices, pooling_iters)
    results["pooling_ms"] = round(pool_s * 1e3, 4)
    results["pooling_shape"] = list(shape)
    results["pooling_share"] = round(min(pool_s / step_s, 1.0), 5)
    log(
        f"landmark pooling fwd+bwd {results['pooling_ms']:.3f} ms at {shape}: "
        f"{results['pooling_share']:.2%} of the step"
    )
  else:
    results["pooling_ms"] = results["pooling_share"] = 0.0
  return results


def usage_error(message):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(define, argv=None, doc=""):
  """(FLAGS, config) from argv (sys.argv by default) with FlagValues made by define(argv).

  Bad flags, a config file that does not load or an override of a missing field
  exit with status 2 and one line (`cli.parse_absl_flags`, as every command);
  --help prints `doc` and the flags and returns (None, None). The config's
  xla_flags go into XLA_FLAGS, read when the backend starts.
  """
  argv = list(sys.argv if argv is None else argv)
  FLAGS = define(argv)
  if any(a in ("-h", "--help", "-?", "--helpfull") for a in argv[1:]):
    print(doc)
    print(FLAGS.get_help())
    return None, None
  rest = parse_absl_flags(argv, FLAGS)
  try:
    config = config_flag("config", FLAGS)
  except ConfigError as e:
    usage_error(one_line(e))
  if len(rest) > 1:
    usage_error(f"unexpected arguments: {' '.join(rest[1:])}")
  if config.get("xla_flags"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + config.xla_flags).strip()
  return FLAGS, config


def main(argv=None):
  """Parses flags from argv (sys.argv by default), runs, prints; returns the results."""
  FLAGS, config = parse_flags(define_flags, argv, __doc__)
  if FLAGS is None:
    return None
  return print_results(
      FLAGS.label,
      lambda: run(
          benchmark_config(config, FLAGS.batch, FLAGS.input, FLAGS.data_dir),
          steps=FLAGS.steps,
          warmup=FLAGS.warmup,
          input_mode=FLAGS.input,
          peak_tflops=FLAGS.peak_tflops,
          matmul_size=FLAGS.matmul_size,
          pooling_iters=FLAGS.pooling_iters,
          profile_dir=FLAGS.profile_dir,
          num_devices=FLAGS.num_devices,
      ),
  )


def print_results(label, compute):
  """compute() -> figures, printed as the last line (JSON, with `label`) and returned.

  A ConfigError (bad config value) exits with status 2 and one line instead.
  """
  import json
  from fashionnet_jax.errors import ConfigError

  try:
    results = compute()
  except ConfigError as e:
    usage_error(e)
  results = dict(label=label, **results)
  print(json.dumps(results), flush=True)
  return results


if __name__ == "__main__":
  main()
