r"""PyTorch FashionNet: one training step, for a side-by-side throughput comparison.

  python -m fashionnet_jax.benchmarks.torch_reference --batch 128 --steps 20 \
      --which peak,torch,torch_compile --out torch.json

Run it in the same GPU session as `benchmarks.train_step`, so the two are compared
on one card (`benchmarks/gpu_run.sh` does both). It builds the paper's network
as configs/gpu.py does: VGG-16 conv1-conv4 shared, three conv5 branches (global;
pose: landmarks + visibility; local: landmark pooling, the max over a 3x3 window
of conv5_local cells around each predicted landmark, zero where predicted
invisible), fc7_fusion over fc6_global + fc6_local, heads for 50 categories, 1000
attributes and a 128-d embedding, with the four FashionNet losses, SGD with
momentum, bf16 autocast and channels_last. It prints images/s per variant and the
bf16 matmul peak, so MFU can be read off, and its FLOP count is `flops.py`'s
convention (3x the forward's multiply-adds x 2). `--device cpu` runs it anywhere
(the tests do, at a tiny size).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

NUM_LANDMARKS, NUM_CATEGORIES, NUM_ATTRIBUTES, EMBEDDING_DIM = 8, 50, 1000, 128
# VGG-16 conv1-conv4 (the shared trunk): (in, out) per 3x3 conv, "M" a 2x2 max pool.
TRUNK = [
    (3, 64),
    (64, 64),
    "M",
    (64, 128),
    (128, 128),
    "M",
    (128, 256),
    (256, 256),
    (256, 256),
    "M",
    (256, 512),
    (512, 512),
    (512, 512),
    "M",
]
CONV5 = [(512, 512)] * 3


def flops_per_image(size: int) -> int:
  """The forward pass's FLOPs (2 per multiply-add) of every conv and fc layer."""
  flops, s = 0, size
  for c in TRUNK:
    if c == "M":
      s //= 2
      continue
    flops += 2 * s * s * c[0] * c[1] * 9
  flops += 3 * len(CONV5) * 2 * s * s * 512 * 512 * 9  # three branches
  p = s // 2
  flops += 2 * (p * p * 512 * 4096 + 4096 * 4096 + 4096 * 4 * NUM_LANDMARKS)  # pose
  flops += 2 * (p * p * 512 * 4096)  # fc6_global
  flops += 2 * (NUM_LANDMARKS * 512 * 1024)  # fc6_local
  flops += 2 * ((4096 + 1024) * 4096 + 4096 * (NUM_CATEGORIES + NUM_ATTRIBUTES + EMBEDDING_DIM))
  return flops


def matmul_peak(device: str) -> float:
  """Achieved bf16 TFLOP/s of an 8192^3 matmul: the denominator of MFU."""
  import torch

  n = 8192
  a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
  b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
  for _ in range(3):
    a @ b
  torch.cuda.synchronize()
  t = time.perf_counter()
  for _ in range(10):
    a @ b
  torch.cuda.synchronize()
  return 2 * n**3 / ((time.perf_counter() - t) / 10) / 1e12


def build_network(size: int):
  import torch
  import torch.nn.functional as F
  from torch import nn

  def convs(spec):
    layers = []
    for c in spec:
      layers += (
          [nn.MaxPool2d(2)]
          if c == "M"
          else [nn.Conv2d(c[0], c[1], 3, padding=1), nn.ReLU(inplace=True)]
      )
    return nn.Sequential(*layers)

  class FashionNet(nn.Module):

    def __init__(self):
      super().__init__()
      self.trunk = convs(TRUNK)
      self.conv5_global, self.conv5_pose, self.conv5_local = (
          convs(CONV5),
          convs(CONV5),
          convs(CONV5),
      )
      p = size // 32
      self.fc6_global = nn.Linear(p * p * 512, 4096)
      self.fc6_pose = nn.Linear(p * p * 512, 4096)
      self.fc7_pose = nn.Linear(4096, 4096)
      self.landmarks = nn.Linear(4096, NUM_LANDMARKS * 2)
      self.visibility = nn.Linear(4096, NUM_LANDMARKS * 2)
      self.fc6_local = nn.Linear(NUM_LANDMARKS * 512, 1024)
      self.fc7_fusion = nn.Linear(4096 + 1024, 4096)
      self.category = nn.Linear(4096, NUM_CATEGORIES)
      self.attributes = nn.Linear(4096, NUM_ATTRIBUTES)
      self.embedding = nn.Linear(4096, EMBEDDING_DIM)

    def landmark_pooling(self, local, landmarks, visibility):
      """Max over the 3x3 cells around each landmark's cell; zero where predicted invisible."""
      b, c, h, w = local.shape
      cx = (landmarks[..., 0].detach() * w).long().clamp(0, w - 1)
      cy = (landmarks[..., 1].detach() * h).long().clamp(0, h - 1)
      d = torch.arange(-1, 2, device=local.device)
      xs = (cx[..., None, None] + d[None, None, None, :]).clamp(0, w - 1)
      ys = (cy[..., None, None] + d[None, None, :, None]).clamp(0, h - 1)
      index = (ys * w + xs).view(b, NUM_LANDMARKS * 9)
      gathered = torch.gather(
          local.flatten(2), 2, index[:, None, :].expand(b, c, NUM_LANDMARKS * 9)
      )
      pooled = gathered.view(b, c, NUM_LANDMARKS, 9).amax(-1)
      visible = (visibility.argmax(-1) == 0).to(pooled.dtype)
      return (pooled * visible[:, None, :]).transpose(1, 2).flatten(1)

    def forward(self, x):
      h = self.trunk(x)
      g = F.relu(self.fc6_global(F.max_pool2d(self.conv5_global(h), 2).flatten(1)))
      p = F.max_pool2d(self.conv5_pose(h), 2).flatten(1)
      p = F.relu(self.fc7_pose(F.relu(self.fc6_pose(p))))
      landmarks = torch.sigmoid(self.landmarks(p)).view(-1, NUM_LANDMARKS, 2)
      visibility = self.visibility(p).view(-1, NUM_LANDMARKS, 2)
      local = F.relu(
          self.fc6_local(self.landmark_pooling(self.conv5_local(h), landmarks, visibility))
      )
      f = F.relu(self.fc7_fusion(torch.cat([g, local], 1)))
      embedding = F.normalize(self.embedding(f).float(), dim=-1)
      return landmarks, visibility, self.category(f), self.attributes(f), embedding

  return FashionNet()


def time_train_step(args, compile_it: bool) -> dict:
  """images/s of the jointly trained step (four losses, SGD momentum, bf16 autocast)."""
  import torch
  import torch.nn.functional as F

  device = args.device
  net = build_network(args.size).to(device).to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

  def step(x, landmarks_t, visibility_t, category_t, attributes_t):
    with torch.autocast(device, dtype=torch.bfloat16):
      landmarks, visibility, category, attributes, embedding = net(x)
      visible = (visibility_t == 0).float()
      loss_landmark = ((landmarks.float() - landmarks_t) ** 2).sum(-1).mul(visible).mean()
      loss_visibility = F.cross_entropy(visibility.float().view(-1, 2), visibility_t.view(-1))
      loss_category = F.cross_entropy(category.float(), category_t)
      loss_attribute = F.binary_cross_entropy_with_logits(attributes.float(), attributes_t)
      n = embedding.shape[0] // 3 * 3
      a, pos, neg = embedding[:n].view(-1, 3, EMBEDDING_DIM).unbind(1)
      loss_triplet = F.relu((a - pos).pow(2).sum(-1) - (a - neg).pow(2).sum(-1) + 0.2).mean()
      loss = loss_landmark + loss_visibility + loss_category + loss_attribute + loss_triplet
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  if compile_it:
    step = torch.compile(step)
  b = args.batch
  x = torch.randn(b, 3, args.size, args.size, device=device).to(memory_format=torch.channels_last)
  batch = (
      x,
      torch.rand(b, NUM_LANDMARKS, 2, device=device),
      torch.randint(0, 2, (b, NUM_LANDMARKS), device=device),
      torch.randint(0, NUM_CATEGORIES, (b,), device=device),
      torch.randint(0, 2, (b, NUM_ATTRIBUTES), device=device).float(),
  )

  def sync():
    if device == "cuda":
      torch.cuda.synchronize()

  t0 = time.perf_counter()
  for _ in range(args.warmup):
    step(*batch)
  sync()
  warmup = time.perf_counter() - t0
  t = time.perf_counter()
  for _ in range(args.steps):
    loss = step(*batch)
  final = float(loss.detach())
  dt = (time.perf_counter() - t) / args.steps
  return {"img_s": b / dt, "step_ms": dt * 1e3, "warmup_s": warmup, "loss": final}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m fashionnet_jax.benchmarks.torch_reference", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--batch", type=int, default=128, help="images per step (default 128)")
  parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
  parser.add_argument("--size", type=int, default=224, help="input size, a multiple of 32")
  parser.add_argument(
      "--which",
      default="peak,torch,torch_compile",
      help="comma-separated: peak (bf16 matmul), torch (eager), torch_compile",
  )
  parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
  parser.add_argument("--out", default="", help="also write the results to this JSON file")
  args = parser.parse_args(argv)
  if args.size % 32:
    parser.error(f"--size {args.size}: must be a multiple of 32 (five 2x2 pools)")
  results = {
      "train_gflop_per_img": 3 * flops_per_image(args.size) / 1e9,
      "batch": args.batch,
      "device": args.device,
  }
  variants = {
      "peak": lambda: matmul_peak(args.device),
      "torch": lambda: time_train_step(args, False),
      "torch_compile": lambda: time_train_step(args, True),
  }
  for name in args.which.split(","):
    if name not in variants:
      parser.error(f"--which {name!r}: use {', '.join(variants)}")
    try:
      value = variants[name]()
    except Exception as e:  # noqa: BLE001 (reported; one variant's failure must not cost the others)
      value = {"error": repr(e)[:300]}
    results["peak_bf16_tflops" if name == "peak" else name] = value
    print(json.dumps(results), flush=True)
  peak = results.get("peak_bf16_tflops")
  for name in ("torch", "torch_compile"):
    r = results.get(name)
    if isinstance(r, dict) and "img_s" in r:
      tflops = r["img_s"] * results["train_gflop_per_img"] / 1e3
      mfu = f"  MFU {tflops / peak:.2%}" if isinstance(peak, float) else ""
      print(f"{name:14s} {r['img_s']:9.1f} img/s  {tflops:7.1f} TFLOP/s{mfu}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
