"""FashionNet networks: backbones, landmark pooling and the three-branch model."""
