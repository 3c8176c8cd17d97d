"""TFDS dataset folder `deepfashion` (loaded by path: `tfds build datasets/deepfashion`)."""
