"""python -m fashionnet_jax.reproduce: the plan of commands, skipping what is done, and the table."""

import io
import json

from fashionnet_jax import reproduce


def _run(*argv):
  out, err = io.StringIO(), io.StringIO()
  status = reproduce.run(list(argv), stdout=out, stderr=err)
  return status, out.getvalue(), err.getvalue()


def test_dry_run_prints_every_command_for_the_four_benchmarks(tmp_path):
  runs, data = tmp_path / "runs", tmp_path / "tfds"
  status, out, err = _run(
      "--manual_dir",
      "/data/deepfashion",
      "--imagenet",
      "/w/vgg16-397923af.pth",
      "--workdir",
      str(runs),
      "--data_dir",
      str(data),
      "--dry-run",
  )
  assert status == 0, err
  commands = [line for line in out.splitlines() if not line.startswith("#")]
  builds = [c for c in commands if c.startswith("tfds build")]
  assert [c.split("--config=")[1].split()[0] for c in builds] == list(reproduce.CONFIGS)
  assert all(
      "--manual_dir=/data/deepfashion" in c and "--file_format=array_record" in c for c in builds
  )
  (convert,) = [c for c in commands if "fashionnet_jax.weights" in c]
  assert "--source=/w/vgg16-397923af.pth" in convert
  trains = [c for c in commands if "fashionnet_jax.main" in c]
  assert len(trains) == 4
  weights = runs / "weights" / "vgg16_imagenet.npz"
  # The retrieval benchmarks fine-tune the category/attribute run, which trains first.
  starts = {
      "category_attribute": weights,
      "landmarks": weights,
      "inshop": runs / "category_attribute",
      "consumer2shop": runs / "category_attribute",
  }
  for benchmark, name in reproduce.CONFIGS.items():
    (line,) = [c for c in trains if f"--workdir={runs / benchmark}" in c]
    assert f"configs/{name}.py:gpu" in line, line
    assert line.split("--config.init_from=")[1].split()[0] == str(starts[benchmark]), line
  order = [c.split("--workdir=")[1].split()[0] for c in trains]
  assert order.index(str(runs / "category_attribute")) < order.index(str(runs / "inshop"))
  assert not runs.exists()  # nothing ran


def test_a_retrieval_benchmark_alone_trains_its_category_attribute_run_first(tmp_path):
  runs = tmp_path / "runs"
  argv = [
      "--manual_dir",
      "/data/deepfashion",
      "--imagenet",
      "/w/vgg16-397923af.pth",
      "--workdir",
      str(runs),
      "--data_dir",
      str(tmp_path / "tfds"),
      "--benchmarks",
      "consumer2shop",
      "--dry-run",
  ]
  status, out, err = _run(*argv)
  assert status == 0, err
  trains = [c for c in out.splitlines() if "fashionnet_jax.main" in c]
  assert [c.split("--workdir=")[1].split()[0] for c in trains] == [
      str(runs / "category_attribute"),
      str(runs / "consumer2shop"),
  ]
  assert "from the category_attribute run" in out
  # Once the category/attribute run has its test evaluation, only the retrieval run is left,
  # and no ImageNet weights are needed for it.
  (runs / "category_attribute" / "eval").mkdir(parents=True)
  (runs / "category_attribute" / "eval" / "100.json").write_text(
      json.dumps({"step": 100, "split": "test", "selected_step": 100})
  )
  status, out, err = _run(*argv)
  trains = [c for c in out.splitlines() if "fashionnet_jax.main" in c]
  assert (
      status == 0 and len(trains) == 1 and "--workdir=" + str(runs / "consumer2shop") in trains[0]
  )
  assert "fashionnet_jax.weights" not in out


def test_done_steps_are_skipped_and_the_table_is_written(tmp_path):
  runs, data = tmp_path / "runs", tmp_path / "tfds"
  (data / "deepfashion" / "inshop" / "1.0.0").mkdir(parents=True)
  (data / "deepfashion" / "inshop" / "1.0.0" / "dataset_info.json").write_text("{}")
  (runs / "weights").mkdir(parents=True)
  (runs / "weights" / "vgg16_imagenet.npz").write_bytes(b"")
  (runs / "inshop" / "eval").mkdir(parents=True)
  (runs / "inshop" / "eval" / "9000.json").write_text(
      json.dumps({"step": 9000, "split": "query", "retrieval_top1": 0.5, "retrieval_top20": 0.8})
  )
  status, out, _ = _run(
      "--manual_dir",
      str(tmp_path),
      "--imagenet",
      str(tmp_path),
      "--workdir",
      str(runs),
      "--data_dir",
      str(data),
      "--benchmarks",
      "inshop",
  )
  assert status == 0 and "fashionnet_jax.main" not in out and "tfds build" not in out
  table = (runs / "results.md").read_text()
  assert "| inshop | retrieval_top20 | 0.8000 | 0.764 |" in table
  assert "| inshop | retrieval_top50 | n/a |" in table


def test_unknown_benchmark_and_missing_inputs_are_one_line_errors(tmp_path):
  status, _, err = _run(
      "--manual_dir",
      str(tmp_path),
      "--imagenet",
      str(tmp_path),
      "--workdir",
      str(tmp_path),
      "--benchmarks",
      "street2shop",
      "--dry-run",
  )
  assert status == 2 and err.count("\n") == 1 and "unknown ['street2shop']" in err
  status, _, err = _run(
      "--manual_dir",
      str(tmp_path / "nope"),
      "--imagenet",
      str(tmp_path),
      "--workdir",
      str(tmp_path),
  )
  assert status == 2 and "--manual_dir" in err and "no such file or folder" in err


def test_backbone_and_landmark_head_reach_the_weights_and_every_run(tmp_path):
  runs = tmp_path / "runs"
  status, out, err = _run(
      "--manual_dir",
      "/data/deepfashion",
      "--imagenet",
      "/w/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "--workdir",
      str(runs),
      "--data_dir",
      str(tmp_path / "tfds"),
      "--backbone",
      "xception",
      "--landmark_head",
      "heatmap",
      "--dry-run",
  )
  assert status == 0, err
  commands = [line for line in out.splitlines() if not line.startswith("#")]
  (convert,) = [c for c in commands if "fashionnet_jax.weights" in c]
  assert "--backbone=xception" in convert
  trains = [c for c in commands if "fashionnet_jax.main" in c]
  assert len(trains) == 4
  overrides = ["--config.model.backbone=xception", "--config.model.landmark_head=heatmap"]
  assert all(all(flag in c for flag in overrides) for c in trains), trains
  (category,) = [c for c in trains if f"--workdir={runs / 'category_attribute'}" in c]
  assert f"--config.init_from={runs / 'weights' / 'xception_imagenet.npz'}" in category
  # The flags name real config fields with values the config checks accept.
  from configs import fld

  from fashionnet_jax.training import config_checks

  config = fld.get_config("gpu")
  config.model.backbone, config.model.landmark_head = "xception", "heatmap"
  config_checks.validate_config(config)
  # The paper's model adds no override.
  status, out, _ = _run(
      "--manual_dir", "/d", "--imagenet", "/w/v.pth", "--workdir", str(runs), "--dry-run"
  )
  assert status == 0 and "--config.model." not in out
