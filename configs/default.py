r"""Category and attributes (`category_attribute`): the CPU demo, or full size with `:gpu` / `:tpu`.

The demo: a small FashionNet (VGG-16 at 1/8 width) on the embedded synthetic
DeepFashion (generated and built with the TFDS builder on first use), both stages
of the paper's schedule in a few minutes on 2 CPU cores:

  python -m fashionnet_jax.main --config=configs/default.py --workdir=/tmp/fashionnet_demo

Full size on real DeepFashion (configs/full_size.py says where each number comes
from; configs/gpu.py and configs/tpu_v3.py are these two):

  python -m fashionnet_jax.main --config=configs/default.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz

Every config file takes the same argument (none, `:gpu`, `:tpu`). `base_config`
holds every field, its demo value and its full-size value side by side; each
benchmark file sets what is its own, once. See the resolved config of any file:

  python -m fashionnet_jax.main --config=configs/inshop.py:gpu --print_config
"""

import ml_collections

from configs import full_size
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.models.heatmap import HEATMAP_SIGMA
from fashionnet_jax.training.losses import ATTRIBUTE_MIN_RATIO
from fashionnet_jax.training.schedule import GROUPS

# Released training-split size (docs/deepfashion.md), for epochs -> steps.
TRAIN_IMAGES = 209_222


def stage(name, steps, train=GROUPS, **weights):
  """One stage of the paper's iterative schedule: loss weights + learning groups.

  As in the paper every group learns in every stage (`train` defaults to all of
  them) and the stages differ by their loss weights; a narrower `train` freezes
  the other groups for the stage (their optimiser state then stays as it was).
  """
  all_weights = dict(landmark=0.0, visibility=0.0, category=0.0, attribute=0.0, triplet=0.0)
  unknown = set(weights) - set(all_weights)
  if unknown:
    raise ConfigError(f"stage {name!r}: unknown loss weights {sorted(unknown)}")
  all_weights.update(weights)
  return ml_collections.ConfigDict(
      dict(name=name, steps=steps, train=tuple(train), weights=all_weights)
  )


def get_config(arg=None):
  """The demo; `arg` 'gpu' or 'tpu' gives the full-size config."""
  return category_config(arg, TRAIN_IMAGES)


def category_config(arg, train_images: int):
  """A category and attribute benchmark: the paper's alternation, model selection on
  validation by attribute recall at full size."""
  config = base_config(arg)
  # The paper's alternation, twice: pose-led, then recognition-led. Full size: 5 + 10
  # epochs per round (30 in all, between mmfashion's lr steps at 20 and its 50 epochs).
  epochs = lambda n: full_size.steps(arg, train_images, n)
  pose, recognition = (epochs(5), epochs(10)) if arg else (150, 250)
  config.stages = [
      stage("pose", pose, landmark=10.0, visibility=1.0, category=0.1, attribute=0.1),
      stage("recognition", recognition, landmark=1.0, visibility=0.1, category=1.0, attribute=1.0),
  ]
  if arg:
    full_size.select_on_validation(config, "attribute_top3_recall", epochs(5))
  return config


def base_config(arg=None):
  """Every field but the stages: the demo's value, else (`arg` 'gpu' / 'tpu') full size's.

  Full size: the paper's VGG-16 on 224x224 crops, bf16 compute with float32
  parameters and optimiser state, SGD fine-tuning ImageNet weights (required:
  `init_from`, or 'scratch' on purpose); configs/full_size.py has the sources.
  """
  full_size.check_platform(arg)
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = "deepfashion/category_attribute"
  config.dataset.data_dir = ml_collections.config_dict.placeholder(
      str
  )  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.dataset.train_split = "train"
  config.dataset.eval_split = "test"
  config.dataset.validation_split = "validation"  # model selection (select_metric)
  # No data yet: write synthetic DeepFashion (fashionnet_jax.synthetic) under
  # data_dir and build it with the TFDS builder. Off for real DeepFashion.
  config.dataset.synthetic_if_missing = not arg
  config.dataset.synthetic_images = 1200  # per benchmark
  config.dataset.manual_dir = ml_collections.config_dict.placeholder(
      str
  )  # where the released benchmarks sit (real data).

  config.image_size = 224 if arg else 64
  config.batch_size = full_size.BATCH_SIZE[arg] if arg else 32  # global, over all hosts and devices
  config.eval_batch_size = 2 * config.batch_size if arg else 64

  config.input = ml_collections.ConfigDict()
  config.input.crop_margin = 0.1
  config.input.crop_jitter = 0.1
  config.input.flip = True
  config.input.color_jitter = 0.2
  # uint8 batches, normalised inside the compiled step: 1/4 of the host-to-device
  # bytes and ~1/3 less host CPU per image (benchmarks/input_pipeline.py).
  config.input.normalize_on_device = True
  # grain multiprocessing workers per host (0: in-process).
  config.input.worker_count = full_size.WORKER_COUNT[arg] if arg else 0
  config.input.prefetch_buffer_size = 4 if arg else 2
  config.input.shuffle = True
  config.input.sampler = "random"  # "pk": P items x K images (triplets)
  config.input.retrieval_p = 8
  config.input.retrieval_k = 4

  config.model = ml_collections.ConfigDict()
  config.model.backbone = "vgg16"
  config.model.width_multiplier = 1.0 if arg else 0.125
  config.model.fc6_dim = 4096 if arg else 256
  config.model.fc6_local_dim = 1024 if arg else 128
  config.model.num_landmarks = 8
  config.model.num_categories = 50
  config.model.num_attributes = 1000
  config.model.embedding_dim = 128
  config.model.use_landmark_branch = True
  config.model.pooling_window = 3
  # "regression" (the paper's: fc7_pose -> sigmoid (x, y)) or "heatmap" (models/heatmap.py:
  # maps at stride 4 from the trunk, 56x56 at 224 px, 16x16 at the demo's 64).
  config.model.landmark_head = "regression"
  config.model.dropout_rate = 0.5 if arg else 0.0  # VGG's, on fc6/fc7
  config.model.dtype = "bfloat16" if arg else "float32"  # compute; params stay float32
  config.init_from = ml_collections.config_dict.placeholder(
      str
  )  # converted ImageNet weights (python -m fashionnet_jax.weights), or 'scratch'
  # Refuse to start from random weights unless init_from='scratch'.
  config.require_init_from = bool(arg)

  config.loss = ml_collections.ConfigDict()
  config.loss.triplet_margin = 0.2
  config.loss.triplet_mining = "batch_hard"  # or "random"
  config.loss.attribute_weighting = True  # w_pos / w_neg from the training split
  # Each attribute's own ratio down to this floor (most real ones are rarer than 1%).
  config.loss.attribute_min_ratio = ATTRIBUTE_MIN_RATIO
  # The heatmap head's Gaussian targets: sigma in map cells (mmpose's 2 at stride 4).
  config.loss.heatmap_sigma = HEATMAP_SIGMA

  config.optimizer = ml_collections.ConfigDict()
  # The paper fine-tunes ImageNet weights with SGD + momentum; the demo trains a
  # small network from scratch, where AdamW gets there in minutes.
  config.optimizer.name = "sgd" if arg else "adamw"
  # Full size: mmfashion's 1e-3 per 256 images, scaled linearly with the batch.
  config.optimizer.learning_rate = full_size.learning_rate(config.batch_size) if arg else 1e-3
  config.optimizer.momentum = 0.9  # sgd only
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 5e-4 if arg else 1e-4  # full size: VGG's
  config.optimizer.schedule = "step" if arg else "cosine"  # "cosine" | "step" | "constant"
  config.optimizer.warmup_steps = 500 if arg else 50
  config.optimizer.step_boundaries = (0.6, 0.85)  # fractions of training ("step")
  config.optimizer.step_factor = 0.1
  config.optimizer.grad_clip_norm = 10.0  # at full size only to survive a bad first batch
  config.optimizer.lr_multipliers = {}  # per group, e.g. {"heads": 10.0}
  # x the rate of every parameter that init_from's weights did not fill.
  config.optimizer.new_layer_lr_multiplier = full_size.NEW_LAYER_LR_MULTIPLIER if arg else 1.0

  # The paper's iterative strategy alternates the stages (each benchmark's
  # config.stages) for this many rounds.
  config.num_rounds = 2

  # Parallelism: a (data, model) mesh; -1 = all remaining devices.
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1
  config.mesh.model = 1  # >1 shards the large fc layers and their optimiser state

  config.log_every_steps = 100 if arg else 25
  config.eval_every_steps = 0  # 0: evaluate at the end only
  # Model selection: with a metric, periodic evaluations run on the validation split,
  # the best step is kept (workdir/best/) and evaluated once on eval_split at the end.
  config.select_metric = ml_collections.config_dict.placeholder(str)
  config.select_mode = "max"  # "min" for landmark_ne
  config.eval_at_start = not arg  # the untrained network's numbers, for comparison
  # Landmarks also from the mirrored image, mirrored back and averaged (models/heatmap.py).
  config.eval_flip_test = False
  config.checkpoint_every_steps = 200
  config.keep_checkpoints = 3 if arg else 2
  config.max_consecutive_nonfinite = 10
  config.profile_steps = 0  # >0: a CLU Profile of that many steps once warm
  config.xla_flags = ""  # appended to $XLA_FLAGS before JAX starts
  return config
