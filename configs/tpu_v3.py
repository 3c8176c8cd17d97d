r"""FashionNet (VGG-16) on full DeepFashion `category_attribute`, Cloud TPU v3-8.

  python -m fashionnet_jax.main --config=configs/tpu_v3.py --workdir=gs://BUCKET/fashionnet/v3-8

(launch/tpu_vm.sh train runs exactly this on every worker; see README, "Train on
Cloud TPU".) Global batch 256 = 32 per TPU core over the 8 cores of a v3-8.
On a pod slice keep 32 per core: --config.batch_size=32*cores (v4-32: 16 chips,
--config.batch_size=512), and scale the learning rate linearly with the global
batch (lr = 0.02 x batch/256, the paper's SGD; keep warm-up at ~1 epoch when the
batch grows beyond 1024).
"""
from configs import gpu


def get_config():
  config = gpu.get_config()
  config.batch_size = 256
  config.eval_batch_size = 512
  config.input.worker_count = 32  # v3-8 hosts have 96 vCPUs
  config.optimizer.learning_rate = 0.02 * config.batch_size / 256
  config.xla_flags = ""
  return config
