r"""In-shop clothes retrieval: triplet loss with batch-hard mining over P items x K images.

  python -m fashionnet_jax.main --config=configs/inshop.py --workdir=/tmp/fashionnet_inshop
  python -m fashionnet_jax.main --config=configs/inshop.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz        # full size (configs/full_size.py); :tpu too

Evaluation: the query split against the gallery split, top-k accuracy (k = 1..50).
In-shop has no validation split, so the full-size run reports its final step.

Full size against mmfashion's recipe (open-mmlab/mmfashion, configs/retriever_in_shop/
roi_retriever_vgg_loss_id_triplet.py): it trains 100 epochs with SGD lr 1e-3 at 8
triplets x 4 GPUs = 32 triplets (anchor, positive, negative: 96 images; mmfashion/
datasets/In_shop.py, find_three), decays at epochs 20 and 40. Ours: P x K = 32 items
x 4 images = 128 images, 100 epochs (the paper's alternation twice), and the rate of
configs/full_size.py's one rule, 1e-3 x 128 / 256 = 5e-4. mmfashion's retrieval rate
is 2.7x its category recipe's per image (1e-3 at 96 images against 1e-3 at 256);
taken over linearly it would be 1.3e-3 here. We keep the one rule: the benchmarks
then share a rate per image, and a batch-hard P x K batch is not mmfashion's random
triplets, so its rate has no claim on ours.
"""

from configs import default, full_size

TRAIN_IMAGES = 25_882  # 3,997 items (docs/deepfashion.md)


def get_config(arg=None):
  config = retrieval_config(arg, TRAIN_IMAGES)
  config.dataset.name = "deepfashion/inshop"
  config.dataset.eval_split = "query"
  if arg:  # no validation split: checkpoints every 10 epochs, the final step reported
    config.checkpoint_every_steps = full_size.steps(arg, TRAIN_IMAGES, 10)
  return config


def retrieval_config(arg, train_images: int):
  """A retrieval benchmark: triplets with batch-hard mining over P items x K images.

  Full size: P x K = 32 items x 4 images per batch of 128. mmfashion's In-shop recipe
  runs 100 epochs (lr decays at 20 and 40; module doc); here the paper's alternation
  twice: 10 epochs pose-led, 40 retrieval-led.
  """
  config = default.base_config(arg)
  config.input.sampler = "pk"
  if arg:  # P items x K = 4 images fill the batch (the demo: 8 x 4 = 32)
    config.input.retrieval_p = config.batch_size // config.input.retrieval_k
  config.loss.attribute_weighting = False  # In-shop carries no 1000-attribute labels
  if not arg:
    # Batch-hard from scratch collapses every embedding to one point (loss stuck at
    # the margin) at AdamW 1e-3; 3e-4 learns (In-shop demo: top-1 0.37 -> 0.56).
    config.optimizer.learning_rate = 3e-4
  epochs = lambda n: full_size.steps(arg, train_images, n)
  pose, retrieval = (epochs(10), epochs(40)) if arg else (150, 250)
  config.stages = [
      default.stage("pose", pose, landmark=10.0, visibility=1.0, triplet=0.1 if arg else 0.0),
      default.stage("retrieval", retrieval, landmark=1.0, visibility=0.1, triplet=1.0),
  ]
  return config
