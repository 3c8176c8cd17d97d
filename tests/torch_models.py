"""torchvision's VGG-16 and ResNet-50 layouts (state_dict keys), built here with random
weights: the independent source the weight-import tests compare against (no download)."""

import torch

nn = torch.nn


def torch_vgg16(fc_dim):
  """torchvision.models.vgg16's layout and state_dict keys, with a small classifier."""
  layers, channels = [], 3
  for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
    if v == "M":
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
      channels = v
  net = nn.Module()
  net.features = nn.Sequential(*layers)
  net.avgpool = nn.AdaptiveAvgPool2d((7, 7))
  net.classifier = nn.Sequential(
      nn.Linear(512 * 49, fc_dim),
      nn.ReLU(True),
      nn.Dropout(),
      nn.Linear(fc_dim, fc_dim),
      nn.ReLU(True),
      nn.Dropout(),
      nn.Linear(fc_dim, 10),
  )
  return net.eval()


class TorchBottleneck(nn.Module):

  def __init__(self, cin, planes, stride):
    super().__init__()
    self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
    self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(
        planes
    )
    self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
    self.downsample = None
    if stride != 1 or cin != planes * 4:
      self.downsample = nn.Sequential(
          nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
      )

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = torch.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class TorchResNet50(nn.Module):
  """torchvision.models.resnet50's layout and state_dict keys, at base width `base`."""

  def __init__(self, base):
    super().__init__()
    self.conv1, self.bn1 = nn.Conv2d(3, base, 7, 2, 3, bias=False), nn.BatchNorm2d(base)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    cin = base
    for i, (blocks, stride) in enumerate(((3, 1), (4, 2), (6, 2), (3, 2))):
      planes = base * 2**i
      stage = [
          TorchBottleneck(cin if b == 0 else planes * 4, planes, stride if b == 0 else 1)
          for b in range(blocks)
      ]
      setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
      cin = planes * 4
    self.fc = nn.Linear(cin, 10)

  def stages(self, x):
    x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
    out = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):
      x = out[name] = getattr(self, name)(x)
    return out
