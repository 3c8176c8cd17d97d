r"""Fashion Landmark Detection (FLD): the pose branch alone, landmarks + visibility.

  python -m fashionnet_jax.main --config=configs/fld.py --workdir=/tmp/fashionnet_fld

Evaluation: normalised error per landmark and the detected percentage.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = "deepfashion/landmarks"
  config.loss.attribute_weighting = False
  config.stages = [
      default.stage("pose", 400, ("trunk", "pose_branch"), landmark=10.0, visibility=1.0),
  ]
  config.num_rounds = 1
  return config
