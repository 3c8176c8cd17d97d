r"""Fashion Landmark Detection (FLD): landmarks + visibility, the pose branch leading.

  python -m fashionnet_jax.main --config=configs/fld.py --workdir=/tmp/fashionnet_fld
  python -m fashionnet_jax.main --config=configs/fld.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz        # full size (configs/full_size.py); :tpu too

Evaluation: normalised error per landmark and the detected percentage. The
full-size run keeps the step with the lowest validation NE and tests it.

Full size: 30 epochs at configs/full_size.py's rate, 5e-4 at 128 images. mmfashion's
recipe (open-mmlab/mmfashion, configs/landmark_detect/landmark_detect_vgg.py) trains
150 epochs with SGD lr 1e-6 at 32 images x 4 GPUs = 128, decays at epochs 10 and 20.
Its rate is not ours to take: its L2 loss is on landmark positions in pixels of the
224 crop (mmfashion/datasets/Landmark_Detect.py), in squared pixels ~224^2 = 5e4
times ours, which is on positions divided by the image size.
"""

from configs import default, full_size

TRAIN_IMAGES = 83_033  # of 123,016 (docs/deepfashion.md)


def get_config(arg=None):
  config = default.base_config(arg)
  config.dataset.name = "deepfashion/landmarks"
  config.loss.attribute_weighting = False
  epochs = lambda n: full_size.steps(arg, TRAIN_IMAGES, n)
  config.stages = [default.stage("pose", epochs(30) if arg else 400, landmark=10.0, visibility=1.0)]
  config.num_rounds = 1
  if arg:
    full_size.select_on_validation(config, "landmark_ne", epochs(3))
  return config
