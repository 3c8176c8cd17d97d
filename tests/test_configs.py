"""Every config loads and validates; the full-size ones are the real recipe, for each benchmark."""
import pytest
from tiny import ROOT  # noqa: F401  (puts the repository root on sys.path)

from configs import (consumer2shop, default, fine, fld, full_size, gpu, inshop, no_landmarks,
                     resnet50, tpu_v3)
from fashionnet_jax.training.config_checks import validate_config
from fashionnet_jax.training.schedule import GROUPS

BENCHMARKS = {default: "category_attribute", inshop: "inshop", consumer2shop: "consumer2shop",
              fld: "landmarks", fine: "category_attribute_fine",
              no_landmarks: "category_attribute"}


@pytest.mark.parametrize("module", [default, inshop, consumer2shop, fld, fine, gpu, tpu_v3,
                                    resnet50, no_landmarks])
def test_every_config_validates(module):
  validate_config(module.get_config())


@pytest.mark.parametrize("module", list(BENCHMARKS))
@pytest.mark.parametrize("platform", full_size.PLATFORMS)
def test_full_size_config_of_every_benchmark(module, platform):
  config = module.get_config(platform)
  validate_config(config)
  assert config.dataset.name == f"deepfashion/{BENCHMARKS[module]}"
  assert config.image_size == 224 and config.model.width_multiplier == 1.0
  assert config.model.backbone == "vgg16" and config.model.dtype == "bfloat16"
  assert config.model.dropout_rate == 0.5 and config.optimizer.name == "sgd"
  assert config.require_init_from and not config.dataset.synthetic_if_missing
  # mmfashion's category recipe, 1e-3 per 2 GPUs x 128 = 256 images, scaled linearly with
  # the batch for every benchmark (In-shop's and consumer-to-shop's too); the layers the
  # weight file does not fill at 10x (which, the Trainer finds out: test_init_multipliers.py).
  assert config.optimizer.learning_rate == pytest.approx(1e-3 * config.batch_size / 256)
  assert config.batch_size == {"gpu": 128, "tpu": 256}[platform]
  assert config.optimizer.new_layer_lr_multiplier == 10.0
  assert not config.optimizer.lr_multipliers  # no hand list of new layers
  # The paper's stages: every group learns, the loss weights change.
  for stage in config.stages:
    assert tuple(stage.train) == GROUPS
  # Model selection on validation wherever the benchmark has a validation split.
  want = {"inshop": None, "consumer2shop": "retrieval_top20", "landmarks": "landmark_ne",
          "category_attribute": "attribute_top3_recall",
          "category_attribute_fine": "attribute_top3_recall"}[BENCHMARKS[module]]
  assert config.get("select_metric") == want


def test_gpu_and_tpu_configs_are_the_default_configs_arguments():
  assert gpu.get_config().to_dict() == default.get_config("gpu").to_dict()
  assert tpu_v3.get_config().to_dict() == default.get_config("tpu").to_dict()


def test_the_demo_stages_are_the_papers_too():
  for stage in default.get_config().stages:
    assert tuple(stage.train) == GROUPS
  weights = [dict(s.weights) for s in default.get_config().stages]
  # Stage 1 leads with the pose terms, stage 2 with the recognition terms.
  assert weights[0]["landmark"] > weights[1]["landmark"] and weights[1]["category"] > weights[0]["category"]


def test_an_unknown_platform_is_a_clear_error():
  with pytest.raises(ValueError, match="config argument 'cpu': use one of gpu, tpu"):
    inshop.get_config("cpu")


@pytest.mark.parametrize("platform", full_size.PLATFORMS)
def test_resnet50_at_full_size_is_the_vgg16_recipe_on_another_trunk(platform):
  config, vgg = resnet50.get_config(platform), default.get_config(platform)
  validate_config(config)
  assert config.model.backbone == "resnet50" and config.require_init_from
  config.model.backbone = vgg.model.backbone
  assert config.to_dict() == vgg.to_dict()
  demo = resnet50.get_config()
  assert demo.optimizer.to_dict() == default.get_config().optimizer.to_dict()


@pytest.mark.parametrize("arg", [None, *full_size.PLATFORMS])
def test_the_ablation_is_fashionnet_without_the_branch_and_nothing_else(arg):
  # The same stages, rounds, optimiser and selection, demo and full size (:gpu / :tpu).
  ablation, fashionnet = no_landmarks.get_config(arg), default.get_config(arg)
  assert ablation.model.use_landmark_branch is False
  ablation.model.use_landmark_branch = True
  assert ablation.to_dict() == fashionnet.to_dict()
