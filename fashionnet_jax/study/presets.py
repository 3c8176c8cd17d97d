"""The study presets: which configs run side by side, on what budget, and which rows the table shows.

A variant is a config file (`configs/*.py`, taken with the study's `:gpu` / `:tpu`
argument for full size, as every config file takes it) plus overrides.
"""

from __future__ import annotations

import dataclasses

from fashionnet_jax.errors import ConfigError
from fashionnet_jax.models.cascade import CASCADE_LEVELS


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str
  config: str  # configs/<file>.py, relative to the repository root
  overrides: dict = dataclasses.field(default_factory=dict)  # flattened config fields


@dataclasses.dataclass(frozen=True)
class Preset:
  name: str
  question: str
  variants: tuple
  rows: tuple  # metric keys, or regular expressions (re.fullmatch) for families of them
  steps: int  # the demo budget, the same for every variant (full size: the first variant's)
  overrides: dict = dataclasses.field(default_factory=dict)  # for every variant (demo only)
  # Also score attributes by extent (local / global / shape; synthetic data only, study/extent.py).
  by_extent: bool = False


_RETRIEVAL = ("retrieval_top1", "retrieval_top5", "retrieval_top20", "retrieval_top50")
_CATEGORY = ("category_top1", "category_top3", "category_top5")
_ATTRIBUTES = (
    "attribute_top3_recall",
    "attribute_top5_recall",
    r"attribute_top5_recall_[a-z]+",
)  # per type, the paper's protocol
# default.py without the landmark branch, demo and full size: the arms differ only in the
# branch (the same stages, and fc7_fusion at random in both; configs/no_landmarks.py).
_NO_LANDMARKS = Variant("no_landmarks", "configs/no_landmarks.py")
# Tiny widths and images (tests/tiny.py's): two variants in well under 3 minutes on 2 cores.
_TINY = {
    "image_size": 32,
    "batch_size": 8,
    "eval_batch_size": 16,
    "model.width_multiplier": 1 / 16,
    "model.fc6_dim": 32,
    "model.fc6_local_dim": 16,
    "model.embedding_dim": 16,
    "dataset.synthetic_images": 60,
    "optimizer.warmup_steps": 0,
    "log_every_steps": 4,
    "checkpoint_every_steps": 1000,  # the final save only
}

PRESETS = {
    p.name: p
    for p in (
        Preset(
            "landmarks",
            "Does the landmark branch help? FashionNet vs the global branch alone "
            "(the ablation the design proposes)",
            (Variant("fashionnet", "configs/default.py"), _NO_LANDMARKS),
            _CATEGORY
            + _ATTRIBUTES
            + (r"attribute_top5_recall_extent_[a-z]+", "landmark_ne")
            + _RETRIEVAL,
            steps=800,
            by_extent=True,
        ),
        Preset(
            "mining",
            "Which triplets to learn from, on In-shop: random, batch-hard (P x K), "
            "or the hard-aware cascade (HDC, ICCV 2017; nested as in the paper, or per level "
            "as its released code)",
            (
                Variant("random", "configs/inshop.py", {"loss.triplet_mining": "random"}),
                Variant("batch_hard", "configs/inshop.py"),
                Variant("cascaded", "configs/inshop_cascaded.py"),  # the paper's nested selection
                Variant(
                    "cascaded_per_level",
                    "configs/inshop_cascaded.py",
                    {"loss.cascade.selection": "per_level"},
                ),
            ),  # the released code's
            _RETRIEVAL
            + tuple(f"retrieval_{level}_top{k}" for level in CASCADE_LEVELS for k in (1, 20))
            + ("landmark_ne",),
            steps=800,
        ),
        Preset(
            "backbone",
            "VGG-16 (the paper's) vs the stronger feature extractors the design proposes: "
            "ResNet-50 and Xception",
            (
                Variant("vgg16", "configs/default.py"),
                Variant("resnet50", "configs/resnet50.py"),
                Variant("xception", "configs/xception.py"),
            ),
            _CATEGORY + _ATTRIBUTES[:2] + ("landmark_ne",),
            steps=800,
        ),
        Preset(
            "landmark_head",
            "Regressed landmarks (the paper's: fc7_pose -> sigmoid (x, y)) vs heatmaps at "
            "stride 4 with sub-cell decoding (models/heatmap.py), the rest of FashionNet "
            "unchanged",
            (
                Variant("regression", "configs/default.py"),
                Variant("heatmap", "configs/default.py", {"model.landmark_head": "heatmap"}),
            ),
            ("landmark_ne", r"landmark_ne_[a-z_]+", r"landmark_detected_bbox224_\d+px")
            + _CATEGORY
            + _ATTRIBUTES[:2],
            steps=800,
        ),
        Preset(
            "smoke",
            "Two tiny variants, for the tests",
            (Variant("fashionnet", "configs/default.py"), _NO_LANDMARKS),
            ("category_top1", "category_top5", "attribute_top5_recall", "landmark_ne"),
            steps=8,
            overrides=_TINY,
        ),
    )
}


def get_preset(name: str) -> Preset:
  if name not in PRESETS:
    raise ConfigError(f"--preset={name!r}: unknown, use one of {', '.join(PRESETS)}")
  return PRESETS[name]
