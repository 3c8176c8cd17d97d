"""New layers learn at 10x: which they are follows from what `init_from` filled, on any
backbone (issue 21: ResNet-50 has no fc6/fc7), and the landmark ablation's arms start alike.

The expected layers are written out here by hand from the two torchvision layouts
(tests/torch_models.py: random weights, nothing downloaded); the expected update is
plain SGD's, -lr x m x g, at the first step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny import tiny_config

from configs import resnet50
from fashionnet_jax.models import FashionNet, pretrained
from fashionnet_jax.study import presets, runner
from fashionnet_jax.training.optim import make_optimizer
from fashionnet_jax.training.runs import CONFIG_FILE
from fashionnet_jax.training.schedule import GROUPS
from fashionnet_jax.training.train_setup import TrainSetup

torch = pytest.importorskip("torch")  # the optional [torch] extra; CI installs it
from torch_models import TorchResNet50, torch_vgg16  # noqa: E402

LR = 0.05
# Layers no ImageNet classifier has, whatever the backbone.
NEW_EVERYWHERE = (
    "pose_branch/landmarks",
    "pose_branch/visibility",
    "local_branch/fc6_local",
    "fusion/fc7_fusion",
    "heads/",
)
# ResNet-50 ends at its conv5_x stage: the fc6/fc7 layers VGG-16 fills are new on it.
NEW_ON_RESNET = NEW_EVERYWHERE + (
    "global_branch/fc6_global",
    "pose_branch/fc6_pose",
    "pose_branch/fc7_pose",
)


def _sgd(config):
  """Plain SGD at LR from the first step: the update is -LR x multiplier x gradient."""
  config.update_from_flattened_dict(
      {
          "optimizer.name": "sgd",
          "optimizer.momentum": 0.9,
          "optimizer.weight_decay": 0.0,
          "optimizer.grad_clip_norm": 0.0,
          "optimizer.warmup_steps": 0,
          "optimizer.schedule": "constant",
          "optimizer.learning_rate": LR,
      }
  )
  return config


def _multipliers(tx, params):
  """{parameter path name: its update / (-LR x gradient)} for a gradient of ones."""
  grads = jax.tree.map(jnp.ones_like, params)
  update = jax.jit(
      lambda g, p: tx.update(g, tx.init(p), p, group_mask=np.ones(len(GROUPS), np.float32))[0]
  )
  updates = update(grads, params)
  flat = jax.tree_util.tree_flatten_with_path(updates)[0]
  out = {}
  for path, u in flat:
    ratio = np.unique(np.round(-np.asarray(u) / LR, 4))
    assert ratio.size == 1, (path, ratio)
    out["/".join(str(getattr(p, "key", p)) for p in path)] = float(ratio[0])
  return out


def _expected(names, new_layers):
  return {n: 10.0 if n.startswith(new_layers) else 1.0 for n in names}


def _resnet50_file(tmp_path):
  torch.manual_seed(0)
  path = tmp_path / "resnet50-11ad3fa6.pth"
  torch.save(TorchResNet50(base=8).state_dict(), path)
  return str(path)


def _full_size_tiny(module, **overrides):
  """A :gpu config at widths a 2-core CPU builds in seconds (ResNet-50 base 8 = torch's)."""
  config = _sgd(module.get_config("gpu"))
  config.update_from_flattened_dict(
      {
          "image_size": 32,
          "batch_size": 8,
          "eval_batch_size": 8,
          "model.width_multiplier": 1 / 8,
          "model.fc6_dim": 32,
          "model.fc6_local_dim": 16,
          "model.num_attributes": 12,
          "model.embedding_dim": 16,
          "model.dtype": "float32",
          "loss.attribute_weighting": False,
          **overrides,
      }
  )
  return config


@pytest.mark.slow
def test_resnet50_fc6_and_fc7_learn_at_the_new_layer_rate(tmp_path):
  # The full-size config through the TrainSetup: the converted ResNet-50 fills the trunk and
  # every conv5 branch; fc6_global, fc6_pose and fc7_pose start at random and learn at 10x.
  config = _full_size_tiny(resnet50, init_from=_resnet50_file(tmp_path))
  trainer = TrainSetup(config, tmp_path / "run", devices=jax.devices()[:1])
  params = jax.device_get(trainer.state.params)
  got = _multipliers(trainer.tx, params)
  assert got == _expected(got, NEW_ON_RESNET)
  assert got["global_branch/fc6_global/fc/kernel"] == 10.0
  assert got["trunk/layer1/blocks/0/conv1/kernel"] == 1.0
  assert got["global_branch/conv5/blocks/2/bn3/scale"] == 1.0
  # A resumed run rebuilds this optimiser from the same file; the state it restores into
  # is built without knowing the new layers (runs.load_run too): the same structure.
  plain = make_optimizer(config, trainer.schedule.total_steps)
  assert jax.tree.structure(plain.init(params)) == jax.tree.structure(trainer.tx.init(params))


def _zeros(config):
  """Parameters of config's FashionNet, as zeros (no initialiser compiled)."""
  abstract = nnx.eval_shape(lambda: FashionNet(config.model, rngs=nnx.Rngs(0)))
  return jax.tree.map(
      lambda s: jnp.zeros(s.shape, s.dtype), nnx.state(abstract, nnx.Param).to_pure_dict()
  )


def test_scratch_has_no_new_layers():
  # init_from=scratch (the TrainSetup passes no filled set): nothing was loaded, no layer is
  # newer than another, all learn at 1x.
  config = _full_size_tiny(resnet50, init_from="scratch")
  got = _multipliers(make_optimizer(config, 100), _zeros(config))
  assert set(got.values()) == {1.0}


def _vgg16_file(tmp_path, fc_dim):
  torch.manual_seed(1)
  path = tmp_path / "vgg16-397923af.pth"
  torch.save(torch_vgg16(fc_dim=fc_dim).state_dict(), path)
  return str(path)


def _filled(path, **model):
  """The parameter path names that load_pretrained fills in an abstract FashionNet."""
  config = tiny_config(**{f"model.{k}": v for k, v in model.items()})
  abstract = nnx.eval_shape(lambda: FashionNet(config.model, rngs=nnx.Rngs(0)))
  written = set(pretrained.load_pretrained(abstract, path, "vgg16"))
  names = {"/".join(map(str, p)) for p, _ in nnx.state(abstract, nnx.Param).flat_state()}
  return config, names, written & names


VGG = dict(width_multiplier=1.0, fc6_dim=64, fc6_local_dim=16, num_attributes=7, embedding_dim=8)


def test_vgg16_fc6_and_fc7_filled_from_imagenet_learn_at_1x(tmp_path):
  path = _vgg16_file(tmp_path, fc_dim=64)
  config, names, filled = _filled(path, **VGG)
  config = _sgd(config)
  config.optimizer.new_layer_lr_multiplier = 10.0
  params = _zeros(config)
  got = _multipliers(make_optimizer(config, 100, frozenset(filled)), params)
  assert got == _expected(names, NEW_EVERYWHERE)
  for layer in ("global_branch/fc6_global", "pose_branch/fc6_pose", "pose_branch/fc7_pose"):
    assert got[f"{layer}/fc/kernel"] == got[f"{layer}/fc/bias"] == 1.0
  assert got["fusion/fc7_fusion/fc/kernel"] == 10.0
  # Without a weight file (the demo) nothing is multiplied.
  assert set(_multipliers(make_optimizer(config, 100), params).values()) == {1.0}


def test_the_ablations_fc7_fusion_starts_at_random_as_fashionnets(tmp_path):
  # fc6_dim 64: the ablation's fc7_fusion (64 inputs) has ImageNet fc7's shape, FashionNet's
  # (64 + 16) has not. Neither is filled, so both learn it at the new-layer rate.
  path = _vgg16_file(tmp_path, fc_dim=64)
  _, names, fashionnet = _filled(path, **VGG)
  _, ablation_names, ablation = _filled(path, **VGG, use_landmark_branch=False)
  fusion = {"fusion/fc7_fusion/fc/kernel", "fusion/fc7_fusion/fc/bias"}
  assert fusion <= names & ablation_names
  assert not fusion & fashionnet and not fusion & ablation
  # Everything the two arms share is filled alike.
  assert fashionnet & ablation_names == ablation


@pytest.mark.parametrize("platform", [None, "gpu"])
def test_the_landmarks_study_arms_differ_only_in_the_branch(platform):
  preset = presets.get_preset("landmarks")
  fashionnet, ablation = (
      runner.variant_config(
          v,
          preset,
          steps=None if platform else preset.steps,
          seed=0,
          data_dir="/d",
          platform=platform,
          init_from="w.npz" if platform else None,
      )
      for v in preset.variants
  )
  assert ablation.model.use_landmark_branch is False
  ablation.model.use_landmark_branch = True
  assert ablation.to_dict() == fashionnet.to_dict()


def _save_run(config, workdir):
  """A FashionNet run folder: config.json and one checkpoint (a state of zeros)."""
  from fashionnet_jax.training.checkpointing import Checkpointer
  from fashionnet_jax.training.runs import model_fn
  from fashionnet_jax.training.step import abstract_train_state

  abstract = abstract_train_state(model_fn(config), make_optimizer(config, 100), 0)
  workdir.mkdir(parents=True)
  (workdir / CONFIG_FILE).write_text(config.to_json_best_effort(indent=1))
  ckpt = Checkpointer(workdir, every_steps=1, keep=1, async_save=False)
  ckpt.save(
      0,
      jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract),
      None,
      dict(step=0, round=0, stage=0, stage_name="pose"),
  )
  ckpt.close()


def test_from_a_fashionnet_run_only_what_it_lacks_is_new(tmp_path):
  # init_from=RUN: the layers copied from the run learn at 1x; the attribute head of
  # another size keeps its initialisation and learns at 10x.
  _save_run(tiny_config(), tmp_path / "source")  # 12 attributes
  config = _sgd(tiny_config(**{"model.num_attributes": 7, "init_from": str(tmp_path / "source")}))
  config.optimizer.new_layer_lr_multiplier = 10.0
  trainer = TrainSetup(config, tmp_path / "run", devices=jax.devices()[:1])
  got = _multipliers(trainer.tx, jax.device_get(trainer.state.params))
  assert got == _expected(got, ("heads/attributes/",))


def test_the_heatmap_heads_layers_are_new_from_imagenet_and_from_a_regression_run(tmp_path):
  # From ImageNet VGG-16: the heatmap head's layers are new (no classifier has them), the
  # regression's landmark fc does not exist; fc6/fc7 are filled as for regression.
  heatmap_new = tuple(n for n in NEW_EVERYWHERE if n != "pose_branch/landmarks") + (
      "pose_branch/heatmaps/",
  )
  path = _vgg16_file(tmp_path, fc_dim=64)
  config, names, filled = _filled(path, **VGG, landmark_head="heatmap")
  config = _sgd(config)
  config.optimizer.new_layer_lr_multiplier = 10.0
  got = _multipliers(make_optimizer(config, 100, frozenset(filled)), _zeros(config))
  assert not any(n.startswith("pose_branch/landmarks") for n in got)
  assert any(n.startswith("pose_branch/heatmaps/") for n in got)
  assert got == _expected(names, heatmap_new)
  # From a regression run (init_from=RUN): only the heatmap head is new.
  _save_run(tiny_config(), tmp_path / "regression")
  config = _sgd(
      tiny_config(**{"model.landmark_head": "heatmap", "init_from": str(tmp_path / "regression")})
  )
  config.optimizer.new_layer_lr_multiplier = 10.0
  trainer = TrainSetup(config, tmp_path / "run", devices=jax.devices()[:1])
  got = _multipliers(trainer.tx, jax.device_get(trainer.state.params))
  assert got == _expected(got, ("pose_branch/heatmaps/",))


def test_a_run_of_another_backbone_is_refused_as_init_from(tmp_path):
  # Only the heads' shapes would match: the run would start from near scratch, silently.
  from fashionnet_jax.errors import ConfigError

  source = tmp_path / "vgg16_run"
  source.mkdir()
  (source / CONFIG_FILE).write_text(tiny_config().to_json_best_effort())
  config = tiny_config(**{"model.backbone": "resnet50", "init_from": str(source)})
  with pytest.raises(ConfigError, match=r"a vgg16 run, and this config's backbone is resnet50"):
    TrainSetup(config, tmp_path / "run", devices=jax.devices()[:1])
  assert not (tmp_path / "run" / "checkpoints").exists()
