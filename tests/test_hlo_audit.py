"""The HLO census on a real deviceless H100 compile, and the audit of the real train step."""

import importlib.util
import json
from pathlib import Path

import pytest
from tiny import TINY_BENCHMARK_FLAGS

from fashionnet_jax.benchmarks import hlo_audit, hlo_census

# A deviceless H100 compile (jax 0.10.2) of three conv + bias + ReLU layers' SGD step,
# parameters donated: made with fashionnet_jax.models.activations.relu, so cuDNN's
# fused forward carries the ReLU (see tests/data/README.md).
H100_HLO = Path(__file__).parent / "data" / "h100_conv_relu_step.hlo"

TINY_FLAGS = TINY_BENCHMARK_FLAGS + [
    "--top=3",
]


def test_census_reads_cudnn_convolutions_bytes_and_donation_off_h100_hlo():
  text = H100_HLO.read_text()
  ops = hlo_census.census(text)
  summary = hlo_census.summarise(ops)
  # 3 forwards with the ReLU fused in, 3 weight gradients, 2 input gradients (none
  # for the input batch).
  assert summary["convolutions"] == {"forward+relu": 3, "backward_filter": 3, "backward_input": 2}
  # Each ReLU gradient + bias gradient is one reduction fusion.
  assert summary["by_kind"]["reduction"]["kernels"] == 3
  forward = next(op for op in ops if op.detail == "forward+relu")
  # x bf16[2,8,8,16] + kernel bf16[16,3,3,16] + bias bf16[16] in; bf16[2,8,8,16] out.
  assert forward.bytes_in == 2 * (2 * 8 * 8 * 16 + 16 * 9 * 16 + 16)
  assert forward.bytes_out == 2 * 2 * 8 * 8 * 16
  # Every direction does the forward's multiply-adds: 2 × 128 positions × 3·3·16·16.
  assert {op.flops for op in ops if op.kind == "convolution"} == {2 * 2 * 8 * 8 * 9 * 16 * 16}
  assert hlo_census.donated_outputs(text) == 6  # 3 kernels + 3 biases
  assert summary["kernels"] == len(ops) and summary["bytes"] == sum(op.bytes for op in ops)


def test_shape_bytes_of_arrays_and_tuples():
  assert hlo_census.shape_bytes("bf16[128,224,224,64]{3,2,1,0}") == 2 * 128 * 224 * 224 * 64
  assert hlo_census.shape_bytes("(f32[3]{0}, pred[2,2]{1,0}, u8[0]{0})") == 12 + 4
  assert hlo_census.shape_bytes("f32[]") == 4


def test_audit_of_the_tiny_train_step_on_this_machine(capsys):
  returned = hlo_audit.main(["hlo_audit"] + TINY_FLAGS)
  results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert results == json.loads(json.dumps(returned))
  assert results["target"] == "local" and results["batch"] == 8
  # 13 VGG-16 convs in the trunk + 3 conv5 branches of 3: forwards and weight gradients.
  assert results["by_kind"]["convolution"]["kernels"] >= 2 * 19
  # The donated train state comes back in place: every leaf aliases its input.
  assert results["donated_outputs"] == results["state_leaves"] > 0
  assert results["memory_bound_ms"] > 0 and results["compute_ms"] > 0
  # The convolutions' FLOPs read off the HLO agree with the analytic count's bulk.
  assert 0.5 < results["conv_flops_per_step"] / results["analytic_flops_per_step"] <= 1.0
  assert results["roofline_floor_ms"] == pytest.approx(
      results["memory_bound_ms"] + results["compute_ms"], abs=2e-5
  )


def test_h100_target_compiles_or_says_what_to_install(capsys):
  has_plugin = importlib.util.find_spec("jax_plugins") is not None and any(
      importlib.util.find_spec(f"jax_plugins.xla_cuda{v}") is not None for v in (12, 13)
  )
  if has_plugin:
    results = hlo_audit.main(["hlo_audit", "--target=h100"] + TINY_FLAGS)
    assert results["device"] == "NVIDIA H100 80GB HBM3"
    assert results["convolutions"]["forward+relu"] == 19
    return
  with pytest.raises(SystemExit) as exit_info:
    hlo_audit.main(["hlo_audit", "--target=h100"] + TINY_FLAGS)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "pip install 'jax-cuda13-plugin==" in err


def test_unknown_target_and_stage_are_one_line_errors(capsys):
  for flag, words in (("--target=tpu9", "known: local, h100"), ("--stage=7", "stages 0..1")):
    with pytest.raises(SystemExit) as exit_info:
      hlo_audit.main(["hlo_audit", flag] + TINY_FLAGS)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
