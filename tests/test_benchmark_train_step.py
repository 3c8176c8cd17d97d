"""The train-step benchmark: its JSON figures on a tiny config, the analytic FLOP count."""

import json

import jax.numpy as jnp
import pytest
from tiny import ROOT, TINY_BENCHMARK_FLAGS, tiny_config

from fashionnet_jax.benchmarks import flops, torch_reference, train_step

TINY_FLAGS = TINY_BENCHMARK_FLAGS + [
    "--num_devices=1",
    "--steps=3",
    "--warmup=1",
    "--matmul_size=128",
    "--pooling_iters=3",
]


@pytest.mark.slow
def test_main_prints_sane_figures_as_last_json_line(capsys):
  returned = train_step.main(["train_step"] + TINY_FLAGS)
  lines = capsys.readouterr().out.strip().splitlines()
  results = json.loads(lines[-1])
  assert results == json.loads(json.dumps(returned))
  for key in (
      "images_per_s",
      "step_ms",
      "compile_s",
      "xla_flops_per_step",
      "analytic_flops_per_step",
      "xla_over_analytic",
      "mfu",
      "mfu_measured_peak",
      "peak_tflops_measured",
      "peak_memory_bytes",
      "pooling_share",
      "pooling_ms",
      "jax",
      "device",
      "batch",
  ):
    assert key in results, key
  assert results["batch"] == 8 and results["num_devices"] == 1
  assert results["images_per_s"] > 0 and results["compile_s"] > 0
  # images/s and step time describe the same measurement.
  assert results["images_per_s"] * results["step_ms"] / 1e3 == pytest.approx(8, rel=1e-3)
  assert results["xla_flops_per_step"] > 0
  assert results["cudnn_conv_flops_per_step"] == 0  # CPU: convolutions are HLO ops XLA counts
  assert (
      results["analytic_flops_per_step"] == flops.train_flops_per_image(tiny_config().model, 32) * 8
  )
  ratio = results["xla_over_analytic"]
  print(f"XLA / analytic FLOPs on the tiny config: {ratio}")
  assert 0.5 < ratio < 2.0, ratio
  assert 0 < results["pooling_share"] < 1
  assert results["pooling_shape"] == [8, 2, 2, 32]  # 32 px / 16, 512 / 16 channels
  assert 0 < results["mfu"] < results["mfu_measured_peak"]  # CPU: far below 989 TFLOP/s
  assert results["peak_memory_bytes"] is None  # CPU devices keep no memory stats


def test_bad_flag_is_one_line_error(capsys):
  with pytest.raises(SystemExit) as exit_info:
    train_step.main(["train_step", "--input=bogus"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error:") and "input" in err and len(err.splitlines()) == 1


def test_bad_config_is_one_line_error(capsys):
  with pytest.raises(SystemExit) as exit_info:
    train_step.main(
        [
            "train_step",
            f"--config={ROOT / 'configs' / 'default.py'}",
            "--config.model.backbone=vgg19",
            "--num_devices=1",
        ]
    )
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert "config.model.backbone='vgg19'" in err and len(err.splitlines()) == 1


def test_analytic_flops_match_the_torch_reference_and_resnet50():
  from configs import gpu

  model = gpu.get_config().model
  # The PyTorch reference counts its own network's layers (benchmarks/torch_reference.py).
  assert (
      flops.train_flops_per_image(model, 224)
      == 110_241_497_088
      == 3 * (torch_reference.flops_per_image(224))
  )
  parts = flops.forward_flops_per_image(model, 224)
  assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
  # ResNet-50's convolutions (trunk + one conv5) are torchvision's 4.09 GMACs.
  trunk, size, channels = flops.resnet_trunk(224, 1.0)
  conv5, side, out = flops.resnet_conv5(size, channels, 1.0)
  assert (size, channels, side, out) == (14, 1024, 7, 2048)
  assert (trunk + conv5) / 2 == pytest.approx(4.089e9, rel=1e-3)
  # Without the landmark branch the pose and local branches are gone.
  model.use_landmark_branch = False
  assert set(flops.forward_flops_per_image(model, 224)) == {
      "trunk",
      "global_branch",
      "fusion",
      "heads",
      "total",
  }
  assert flops.conv5_shape(gpu.get_config().model, 224) == (14, 512)


@pytest.mark.slow
def test_profile_joins_kernels_to_the_step_hlo_ops(tmp_path, capsys):
  from fashionnet_jax.benchmarks import profile_summary

  profile_dir = tmp_path / "prof"
  results = train_step.main(["train_step"] + TINY_FLAGS + [f"--profile_dir={profile_dir}"])
  assert (profile_dir / "step.hlo").read_text().startswith("HloModule")
  summary = profile_summary.summarise(
      str(profile_dir), top=10, steps=results["profile_steps"], device="cpu"
  )
  joined = summary["hlo"]
  # Every timed XLA kernel of the trace is an instruction of the dumped program.
  assert joined["unmatched_ms"] == 0 and joined["ops"]
  total = sum(entry["ms"] for entry in joined["kinds"].values())
  assert total == pytest.approx(summary["kernel_ms_per_step"], rel=0.01)
  convs = [row for row in joined["ops"] if row["kind"] == "convolution"]
  assert convs and all(row["gflop"] > 0 for row in convs)  # FLOPs read off the HLO shapes
  assert joined["kinds"]["convolution"]["ms"] > 0


def test_kernel_kinds_do_not_take_converts_for_convolutions():
  from fashionnet_jax.benchmarks.profile_summary import kind_of

  assert kind_of("loop_convert_fusion") == "elementwise fusion"
  assert kind_of("wrapped_convert_17") == "other"
  assert kind_of("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32") == "convolution"
  assert kind_of("cudnn-conv-bias-activation.57") == "convolution"
  assert kind_of("input_reduce_select_fusion_8") == "reduction"


def test_xception_flops_match_xlas_count_of_the_model():
  """The analytic count of models/xception.py's trunk + exit flow against XLA's own count of
  the compiled model (its extra 0.4% is BatchNorm, ReLU and the additions)."""
  from flax import nnx

  from fashionnet_jax.models import xception

  width, size = 0.25, 96
  rngs = nnx.Rngs(0)
  trunk = xception.XceptionTrunk(width, rngs=rngs)
  exit_flow = xception.XceptionExitFlow(trunk.out_channels, width, rngs=rngs)
  compiled = nnx.jit(lambda x: exit_flow(trunk(x))).lower(jnp.zeros((1, size, size, 3))).compile()
  cost = compiled.cost_analysis()
  xla = (cost if isinstance(cost, dict) else cost[0])["flops"]
  trunk_flops, side, channels = flops.xception_trunk(size, width)
  exit_flops, out_side, out_channels = flops.xception_conv5(side, channels, width)
  assert (side, channels, out_side, out_channels) == (6, 182, 3, 512)
  assert trunk_flops + exit_flops == pytest.approx(xla, rel=0.01)
  assert trunk_flops + exit_flops < xla
