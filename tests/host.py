"""What the tests take from the machine they run on: real photos and system tools.

Real photos: the DeepFashion samples when `FASHIONNET_SAMPLES=DIR` names a folder
of them (.ci/run points it at the team's sample folder beside the clone; DeepFashion
is research-only, so the repository holds none), else three public-domain photos scikit-image ships
(`astronaut`, `coffee`, `chelsea`), written once as JPEGs.

System tools (shellcheck, chromedriver, root for `mount`): a test that lacks one
skips with a one-line reason on a user's machine and fails when `CI=true`, so CI
still proves it.
"""

import os
import shutil
from pathlib import Path

import pytest

SAMPLES_VARIABLE = "FASHIONNET_SAMPLES"
PUBLIC_DOMAIN = ("astronaut", "coffee", "chelsea")  # skimage.data, bundled in the wheel
# The attribute benchmark's demo photo, with its released list_bbox.txt box.
BBOX_SAMPLE = "attr_pred_demo2.jpg"
BBOX = (72, 79, 232, 273)  # inside every photo here (the smallest, chelsea, is 451x300)


def samples() -> list[Path] | None:
  """The .jpg files in FASHIONNET_SAMPLES, sorted; None when the variable is unset.

  Raises:
    FileNotFoundError: the variable names a folder with no .jpg in it.
  """
  folder = os.environ.get(SAMPLES_VARIABLE)
  if not folder:
    return None
  paths = sorted(Path(folder).glob("*.jpg"))
  if not paths:
    raise FileNotFoundError(f"{SAMPLES_VARIABLE}={folder}: no .jpg files there")
  return paths


def real_photos(out: Path) -> list[Path]:
  """The DeepFashion samples, else the public-domain photos written as JPEGs into `out`."""
  paths = samples()
  if paths is not None:
    return paths
  import skimage.data
  from PIL import Image

  paths = []
  for name in PUBLIC_DOMAIN:
    path = out / f"{name}.jpg"
    Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=90)
    paths.append(path)
  return paths


def bbox_photo(photos: list[Path]) -> Path:
  """The photo that `BBOX` is released for when the samples are there, else the first."""
  return next((p for p in photos if p.name == BBOX_SAMPLE), photos[0])


def needs(available: bool, reason: str):
  """Skips the calling test (one line: `reason`) where `available` is False; fails under CI=true."""
  __tracebackhide__ = True  # pytest reports the test's line, not this one
  if available:
    return
  if os.environ.get("CI") == "true":
    pytest.fail(f"{reason} (CI=true: CI must run this test)", pytrace=False)
  pytest.skip(reason)


def program(name: str, install: str) -> str:
  """The path of system program `name`, or `needs`' skip/fail saying how to install it."""
  __tracebackhide__ = True
  path = shutil.which(name)
  needs(path is not None, f"{name} is not installed: {install}")
  return path
