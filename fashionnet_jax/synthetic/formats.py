"""The DeepFashion annotation file formats, written byte for byte.

See docs/deepfashion.md: line 1 the record count, line 2 the
column names, then rows whose image names are padded with runs of spaces and
whose pixel coordinates are zero-padded to 3 digits. Landmark rows hold `vis x
y` triples in the clothes type's own order (6 upper / 4 lower / 8 full), or
always 8 (padded with `0 000 000`) in FLD.
"""

import os
import zipfile

import numpy as np

from fashionnet_jax import schema

NAME_WIDTH = 71  # `img/Sheer_Pleated-Front_Blouse/img_00000001.jpg` + 24 spaces
LANDMARK_NAME_WIDTH = 72  # the real landmark files pad one more
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so that the zip's bytes are reproducible


def pad(name, width=NAME_WIDTH):
  """`name` left-justified in `width` columns, with at least one space after it."""
  return name.ljust(width - 1) + " "


def landmark_header(variation):
  cols = ["image_name", "clothes_type"] + (["variation_type"] if variation else [])
  for i in range(1, 9):
    cols += [f"landmark_visibility_{i}", f"landmark_location_x_{i}", f"landmark_location_y_{i}"]
  return "  ".join(cols)


def landmark_triples(landmarks, visibility, clothes_type, width, height, pad_to_8=False):
  """`  v xxx yyy` per landmark of the type, in its own order (FLD: padded to 8).

  Truncated landmarks are clipped into the image (3-digit fields hold no sign).
  """
  out = []
  for slot in schema.SLOTS_BY_CLOTHES_TYPE[clothes_type]:
    x = int(np.clip(np.round(landmarks[slot][0]), 0, width - 1))
    y = int(np.clip(np.round(landmarks[slot][1]), 0, height - 1))
    out.append(f"  {int(visibility[slot])} {x:03d} {y:03d}")
  if pad_to_8:
    out += ["  0 000 000"] * (8 - len(out))
  return "".join(out)


def landmark_pairs(landmarks, clothes_type, width, height):
  """Anno_fine's `<split>_landmarks.txt` row: `x y` per landmark of the type in its
  own order, padded with `0 0` to 8 (mmfashion's layout; no visibility)."""
  out = []
  for slot in schema.SLOTS_BY_CLOTHES_TYPE[clothes_type]:
    x = int(np.clip(np.round(landmarks[slot][0]), 0, width - 1))
    y = int(np.clip(np.round(landmarks[slot][1]), 0, height - 1))
    out.append(f"{x} {y}")
  return " ".join(out + ["0 0"] * (schema.NUM_LANDMARKS - len(out)))


def write_lines(path, rows, eol="\n"):
  """A file of plain rows: no count line, no header (Anno_fine's per-split files)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write("".join(row + eol for row in rows))
  return path


def bbox_fields(bbox):
  return " ".join(f"{c:03d}" for c in bbox)


def write_list(path, header, rows, eol="\n", count=None):
  """A `list_*.txt`: count line, header line (None: no header), rows."""
  lines = [str(len(rows) if count is None else count)]
  if header is not None:
    lines.append(header)
  lines += rows
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write(eol.join(lines) + eol)
  return path


class ImageSink:
  """Writes the images as `Img/img.zip` (members `img/...`) or the extracted `Img/img/`."""

  def __init__(self, benchmark_dir, zipped):
    self.root = os.path.join(benchmark_dir, "Img")
    self.zip = None
    if zipped:
      os.makedirs(self.root, exist_ok=True)
      self.path = os.path.join(self.root, "img.zip")
      self.zip = zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED)
    else:
      self.path = os.path.join(self.root, "img")

  def add(self, name, data):
    if self.zip is not None:
      info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
      info.external_attr = 0o644 << 16
      self.zip.writestr(info, data)
    else:
      path = os.path.join(self.root, name)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "wb") as f:
        f.write(data)

  def close(self):
    if self.zip is not None:
      self.zip.close()
