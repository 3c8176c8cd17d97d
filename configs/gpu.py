r"""FashionNet (VGG-16, the paper's) on full DeepFashion `category_attribute`, one H100.

  python -m fashionnet_jax.main --config=configs/gpu.py --workdir=/data/runs/fashionnet \
      --config.dataset.data_dir=/data/tensorflow_datasets

Batch 128 at 224x224, bf16 compute with float32 parameters and optimiser state.
Build the dataset first (README, "Build real DeepFashion"). ImageNet initialisation:
convert torchvision's vgg16 weights with `python -m fashionnet_jax.weights` and set
--config.init_from=PATH.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.dataset.synthetic_if_missing = False
  config.dataset.data_dir = None  # $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.dataset.eval_split = "test"
  config.image_size = 224
  config.batch_size = 128
  config.eval_batch_size = 256
  config.input.worker_count = 14  # 12 cost 14.8% at v0 (benchmarks/NOTES.md)
  config.input.prefetch_buffer_size = 4

  config.model.width_multiplier = 1.0
  config.model.fc6_dim = 4096
  config.model.fc6_local_dim = 1024
  config.model.dtype = "bfloat16"
  config.model.dropout_rate = 0.5

  config.optimizer.name = "sgd"  # the paper's
  config.optimizer.learning_rate = 0.01
  config.optimizer.warmup_steps = 1000
  config.optimizer.weight_decay = 5e-4
  # New layers (heads) learn faster than the ImageNet-initialised trunk.
  config.optimizer.lr_multipliers = {"heads": 10.0}

  # ~209k training images: 1,600 steps of 128 is about one epoch.
  config.stages = [
      default.stage("pose", 8000, ("trunk", "pose_branch"),
                    landmark=10.0, visibility=1.0, category=0.1, attribute=0.1),
      default.stage("recognition", 16000,
                    ("trunk", "local_branch", "global_branch", "fusion", "heads"),
                    landmark=1.0, visibility=0.1, category=1.0, attribute=1.0),
  ]
  config.num_rounds = 2
  config.log_every_steps = 100
  config.eval_every_steps = 8000
  config.eval_at_start = False
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 3
  # XLA flags measured on the H100 (fashionnet_jax/benchmarks/NOTES.md).
  config.xla_flags = ""
  return config
