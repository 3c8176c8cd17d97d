"""The real train step compiled devicelessly for a TPU v3-8 (8 cores) on this CPU, tiny config.

Runs where libtpu is installed (pip install -e '.[tpu-audit]'); elsewhere the
audit must say, in one line, what to install.
"""

import importlib.util

import pytest
from test_hlo_audit import TINY_FLAGS

from fashionnet_jax.benchmarks import hlo_audit

# 2 images per core over the slice's 8 cores.
FLAGS = [f for f in TINY_FLAGS if not f.startswith("--batch=")] + ["--batch=16"]


def test_tpu_v3_8_compiles_the_tiny_train_step_or_says_what_to_install(capsys):
  if importlib.util.find_spec("libtpu") is None:
    with pytest.raises(SystemExit) as exit_info:
      hlo_audit.main(["hlo_audit", "--target=tpu-v3-8"] + FLAGS)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -e '.[tpu-audit]'" in err, err
    pytest.skip("libtpu is not installed: pip install -e '.[tpu-audit]'")
  r = hlo_audit.main(["hlo_audit", "--target=tpu-v3-8"] + FLAGS)
  out = capsys.readouterr().out
  assert (r["device"], r["devices"], r["mesh"]) == ("TPU v3", 8, {"data": 8, "model": 1})
  assert r["batch"] == 16 and r["batch_per_device"] == 2
  # XLA:TPU's own memory figures, per core, summed as the peak and set against 16 GiB.
  memory = r["memory"]
  assert memory["temp_size_in_bytes"] > 0 and memory["argument_size_in_bytes"] > r["param_bytes"]
  assert (
      r["peak_memory_bytes"] == hlo_audit.peak_memory_bytes(memory) < r["hbm_bytes"] == 16 * 2**30
  )
  assert r["fits"] and "fits" in out
  # Data parallelism: the gradients cross the cores in one all-reduce of every
  # parameter; whatever else crosses (the loss's sums, the triplet mining's gather of
  # the batch's embeddings) is small beside it.
  largest = max(r["collectives"], key=lambda c: c["bytes"])
  assert largest["op"] == "all-reduce"
  assert r["param_bytes"] <= largest["bytes"] < 1.01 * r["param_bytes"]
  others = sum(c["bytes"] for c in r["collectives"]) - largest["bytes"]
  assert others < 0.05 * largest["bytes"]
  assert {c["op"] for c in r["collectives"]} <= {"all-reduce", "all-gather"}
  # The state is donated, as main trains it.
  assert r["donated_outputs"] == r["state_leaves"] > 0
  # The convolutions are XLA:TPU's own (no custom calls): its FLOPs cover the analytic count.
  assert r["xla_flops_per_device"] >= 0.5 * r["analytic_flops_per_device"] > 0
  assert r["roofline_floor_ms"] == pytest.approx(max(r["compute_ms"], r["memory_ms"]), abs=1e-4)
  assert (r["peak_tflops"], r["bandwidth_gbs"]) == (61.5, 450.0)  # a v3 core: half a chip
