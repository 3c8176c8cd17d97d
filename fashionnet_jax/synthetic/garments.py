"""Garment geometry for synthetic DeepFashion: silhouettes, landmarks, parts.

A garment is drawn in a canonical frame (x right, y down, units of about one
garment height, centre line x = 0), upright and facing the viewer, and then
posed into the image by `synthetic.render`.

Landmark convention (the whole project's): the 8 slots are
[left collar, right collar, left sleeve, right sleeve, left waistline,
right waistline, left hem, right hem], where **left = the landmark on the
image's left (smaller x) for an upright garment facing the viewer, before any
rotation**. So a horizontal flip of the image must swap the slots pairwise
(`schema.FLIP_PERMUTATION`). Upper-body garments use slots 0,1,2,3,6,7, lower-body
4,5,6,7, full-body all 8. The points are where the drawing puts them: collar =
the neckline's outer corners, sleeve = the middle of the cuff (of the armhole
when sleeveless), waistline = the outline's sides at the waist, hem = the hem's
outer corners (the middle of each leg's hem for trousers and shorts).
"""

import dataclasses

import numpy as np

from fashionnet_jax import schema
from fashionnet_jax.synthetic import vocab

# Drawn categories: name -> (top, bottom, allowed choices). `top` is the upper
# part's cut, `bottom` the lower part's ("skirt", "trousers", "shorts", None).
# Each has a silhouette of its own so that category is learnable from shape.
_ANY_COLOUR = tuple(vocab.COLOURS)
FAMILIES = {
    # Upper body.
    "Tee": dict(top="tee", bottom=None, sleeves=("short",), necks=("crew", "v")),
    "Tank": dict(top="tank", bottom=None, sleeves=("none",), necks=("scoop",)),
    "Blouse": dict(top="blouse", bottom=None, sleeves=("long", "short"), necks=("v", "crew")),
    "Hoodie": dict(top="hoodie", bottom=None, sleeves=("long",), necks=("hood",)),
    "Blazer": dict(top="blazer", bottom=None, sleeves=("long",), necks=("lapel",)),
    "Cardigan": dict(top="cardigan", bottom=None, sleeves=("long",), necks=("v",)),
    "Turtleneck": dict(top="turtle", bottom=None, sleeves=("long",), necks=("turtle",)),
    # Lower body.
    "Jeans": dict(top=None, bottom="jeans"),
    "Joggers": dict(top=None, bottom="joggers"),
    "Leggings": dict(top=None, bottom="leggings"),
    "Shorts": dict(top=None, bottom="shorts"),
    "Skirt": dict(top=None, bottom="skirt"),
    # Full body.
    "Dress": dict(
        top="bodice",
        bottom="skirt",
        sleeves=("none", "short", "long"),
        necks=("crew", "v", "scoop"),
    ),
    "Jumpsuit": dict(
        top="bodice", bottom="jeans", sleeves=("none", "short", "long"), necks=("crew", "v")
    ),
    "Romper": dict(
        top="bodice", bottom="shorts", sleeves=("none", "short"), necks=("crew", "v", "scoop")
    ),
    "Kimono": dict(top="kimono", bottom="robe", sleeves=("short",), necks=("wrap",)),
    "Coat": dict(top="coat", bottom="robe", sleeves=("long",), necks=("lapel",)),
}
DRAWN_CATEGORIES = tuple(FAMILIES)


@dataclasses.dataclass(frozen=True)
class GarmentSpec:
  """One item: everything that makes two images the same garment."""

  category: str
  colour: str = "blue"  # style: colour family (vocab.COLOURS)
  texture: str = "solid"  # vocab.TEXTURES
  fabric: str = "cotton"  # vocab.FABRICS
  sleeve: str = "long"  # none | short | long (upper, full)
  length: str = "regular"  # short | regular | long (tops, skirts, robes)
  fit: str = "fitted"  # fitted | loose
  neckline: str = "crew"  # vocab.NECKLINES key (upper, full)
  parts: tuple = ()  # subset of vocab.PARTS
  trims: tuple = ()  # subset of vocab.TRIMS: local, at their landmarks
  rgb: tuple = (50, 90, 200)  # exact primary colour
  width_scale: float = 1.0  # per-item shape jitter
  length_scale: float = 1.0

  @property
  def clothes_type(self):
    return schema.CATEGORY_TYPE[self.category]

  @property
  def family(self):
    return FAMILIES[self.category]

  def attributes(self):
    """Names of the attributes this garment shows (its positives)."""
    names = [self.texture, self.fabric, self.colour, self.fit, *self.parts, *self.trims]
    fam = self.family
    if fam["top"]:
      names += [vocab.SLEEVES[self.sleeve], vocab.NECKLINES[self.neckline]]
    if fam["bottom"] in ("skirt", "robe"):
      names.append(vocab.SKIRT_LENGTHS[self.length])
    elif fam["bottom"] is None:
      names.append(vocab.TOP_LENGTHS[self.length])
    return tuple(sorted(set(names)))

  def fine_attributes(self):
    """Its positives among the 26 Anno_fine attributes (vocab.FINE_ATTRIBUTES)."""
    fam = self.family
    names = [
        vocab.FINE_TEXTURES[self.texture],
        vocab.FINE_FABRICS[self.fabric],
        vocab.FINE_FITS[self.fit],
        vocab.FINE_NECKLINES[self.neckline] if fam["top"] else "no_neckline",
    ]
    if fam["top"]:
      names.append(vocab.FINE_SLEEVES[self.sleeve])
    if self.clothes_type == schema.FULL and fam["bottom"] in ("skirt", "robe"):
      names += [vocab.FINE_DRESS_LENGTHS[self.length]] if self.length != "regular" else []
    else:
      names.append("no_dress")
    return tuple(sorted(set(names)))


def random_spec(rng, category=None):
  """A random garment of `category` (default: any drawn category)."""
  if category is None:
    category = DRAWN_CATEGORIES[rng.integers(len(DRAWN_CATEGORIES))]
  fam = FAMILIES[category]
  colour = _ANY_COLOUR[rng.integers(len(_ANY_COLOUR))]
  rgb = np.clip(np.array(vocab.COLOURS[colour]) + rng.integers(-15, 16, 3), 0, 255)
  fabric = (
      "denim"
      if fam["bottom"] == "jeans" and rng.random() < 0.7
      else (vocab.FABRICS[rng.integers(len(vocab.FABRICS))])
  )
  parts = [p for p in vocab.PARTS if rng.random() < 0.35]
  if category in ("Blazer", "Cardigan", "Coat"):
    parts = sorted(set(parts) - {"zip"} | {"button"})
  fit = "fitted" if category == "Leggings" else vocab.FITS[rng.integers(2)]
  # Collars and cuffs need an upper part; every garment has a hem.
  has = {
      "contrast collar": bool(fam["top"]),
      "contrast cuff": bool(fam["top"]),
      "trimmed hem": True,
  }
  trims = tuple(t for t in vocab.TRIMS if rng.random() < 0.35 and has[t])
  return GarmentSpec(
      category=category,
      colour=colour,
      texture=vocab.TEXTURES[rng.integers(len(vocab.TEXTURES))],
      fabric=fabric,
      sleeve=_pick(rng, fam.get("sleeves", ("long",))),
      length=_pick(rng, ("short", "regular", "long")),
      fit=fit,
      neckline=_pick(rng, fam.get("necks", ("crew",))),
      parts=tuple(parts),
      trims=trims,
      rgb=tuple(int(c) for c in rgb),
      width_scale=float(rng.uniform(0.92, 1.08)),
      length_scale=float(rng.uniform(0.92, 1.08)),
  )


def default_spec(category):
  """The category's plain garment (first allowed choices): for shape tests."""
  fam = FAMILIES[category]
  return GarmentSpec(
      category=category,
      sleeve=fam.get("sleeves", ("long",))[0],
      neckline=fam.get("necks", ("crew",))[0],
  )


def _pick(rng, choices):
  return choices[rng.integers(len(choices))]


@dataclasses.dataclass
class Geometry:
  """A garment in the canonical frame."""

  polygons: list  # [N, 2] float arrays, filled: the silhouette
  landmarks: np.ndarray  # [8, 2]
  used: np.ndarray  # [8] bool: slots this clothes type has
  circles: list  # (cx, cy, r): buttons
  lines: list  # [N, 2] arrays: seams, zip, lapels, pocket edges


def _mirror(points):
  return [(-x, y) for x, y in reversed(points)]


def garment_geometry(spec):
  """Silhouette, landmarks and part drawings of `spec` in the canonical frame."""
  fam = spec.family
  w, l = spec.width_scale, spec.length_scale
  loose = spec.fit == "loose"
  landmarks = np.zeros((schema.NUM_LANDMARKS, 2))
  extra, circles, lines = [], [], []
  chain = []  # the left half of the outline, from the neck's centre down.
  top, bottom = fam["top"], fam["bottom"]
  waist_w = 0.135 * w * (1.12 if loose else 1.0)
  neck_dip = 0.0
  if top:
    neck_w = {"tank": 0.085, "kimono": 0.08, "turtle": 0.065}.get(top, 0.07) * w
    shoulder_w = {
        "tank": neck_w + 0.045,
        "blazer": 0.235,
        "coat": 0.225,
        "kimono": 0.22,
        "hoodie": 0.215,
        "turtle": 0.17,
    }.get(top, 0.2) * (w if top != "tank" else 1)
    chest_w = (0.19 if loose else 0.17) * w * {"turtle": 0.85, "hoodie": 1.12}.get(top, 1.0)
    armpit_y = 0.2 if top == "tank" else 0.17
    neck_dip = {
        "crew": 0.04,
        "v": 0.15,
        "scoop": 0.1,
        "hood": 0.05,
        "turtle": 0.0,
        "lapel": 0.26,
        "wrap": 0.3,
    }[spec.neckline]
    collar = (-neck_w, 0.0)
    shoulder = (-shoulder_w, 0.03)
    armpit = (-chest_w, armpit_y)
    chain += [(0.0, neck_dip), collar, shoulder]
    if spec.sleeve == "none":
      sleeve_pt = ((shoulder[0] + armpit[0]) / 2, (shoulder[1] + armpit[1]) / 2)
    else:
      long_sleeve = spec.sleeve == "long"
      if top == "kimono":  # wide, square sleeves hanging from the shoulder
        length, angle, cuff = 0.2, 35, 0.2
      elif long_sleeve:
        length, angle, cuff = 0.46, 18, 0.075
      else:
        length, angle, cuff = 0.14, 40, 0.09
      rad = np.deg2rad(angle)
      along = np.array([-np.sin(rad), np.cos(rad)]) * length * l
      across = np.array([np.cos(rad), np.sin(rad)])  # towards the body
      outer = np.array(shoulder) + along
      flare = 1.5 if top == "blouse" and long_sleeve else 1.0
      inner = outer + across * cuff * flare
      chain += [tuple(outer), tuple(inner)]
      sleeve_pt = tuple((outer + inner) / 2)
      if top == "hoodie":  # ribbed cuff
        lines.append(np.array([outer - along * 0.1, inner - along * 0.1]))
    chain.append(armpit)
    landmarks[0], landmarks[2] = collar, sleeve_pt
    if top == "turtle":  # the high collar band above the neckline
      extra.append(np.array([(-neck_w, 0.01), (-neck_w, -0.07), (neck_w, -0.07), (neck_w, 0.01)]))
    if top == "hoodie":  # the hood, behind and above the neck
      t = np.linspace(np.pi * 0.95, np.pi * 2.05, 14)
      extra.append(np.stack([np.cos(t) * 0.12 * w, np.sin(t) * 0.12 + 0.02], -1))
    if spec.neckline == "lapel":
      lines += [
          np.array([(-neck_w, 0.0), (-0.06, 0.12), (0.0, neck_dip)]),
          np.array([(neck_w, 0.0), (0.06, 0.12), (0.0, neck_dip)]),
      ]
  if bottom is None:  # a top: the hem closes the outline.
    hem_y = {"short": 0.36, "regular": 0.5, "long": 0.64}[spec.length] * l
    hem_y *= 1.25 if top == "cardigan" else 1.0
    hem_w = chest_w + (0.05 if top == "blouse" else 0.02 if loose else 0.0)
    if top == "hoodie":
      hem_w = chest_w - 0.01
      lines.append(np.array([(-hem_w, hem_y - 0.04), (hem_w, hem_y - 0.04)]))
    chain += [(-hem_w, hem_y), (0.0, hem_y)]
    landmarks[6] = (-hem_w, hem_y)
    closure_end = hem_y
  else:
    waist_y = 0.36 * l if top else 0.0
    if top:
      chain.append((-waist_w, waist_y))
    else:
      chain.append((-waist_w, 0.0))
    landmarks[4] = (-waist_w, waist_y)
    if bottom in ("skirt", "robe"):
      length = {"short": 0.24, "regular": 0.42, "long": 0.62}[spec.length] * l
      if bottom == "robe":
        length = {"short": 0.36, "regular": 0.5, "long": 0.62}[spec.length] * l
      flare = 0.02 if bottom == "robe" else 0.07 + 0.05 * loose
      hem = (-waist_w - flare - length * 0.12, waist_y + length)
      chain += [(-waist_w - 0.015, waist_y + 0.07), hem, (0.0, hem[1])]
      landmarks[6] = hem
      closure_end = hem[1]
    else:  # two legs
      leg_len = {"jeans": 0.62, "joggers": 0.6, "leggings": 0.64, "shorts": 0.2}[bottom] * l
      if bottom == "leggings":  # skin-tight: a narrower waist
        waist_w *= 0.82
        chain[-1] = (-waist_w, waist_y)
        landmarks[4] = chain[-1]
      hem_half = (
          {"jeans": 0.072, "joggers": 0.04, "leggings": 0.03, "shorts": 0.085}[bottom]
          * w
          * (1.25 if loose else 1.0)
      )
      hip = (-waist_w - (0.05 if bottom == "joggers" else 0.02), waist_y + 0.09)
      centre_x = -waist_w * (0.5 if bottom != "shorts" else 0.62) - (0.01 if loose else 0)
      hem_y = waist_y + leg_len
      outer, inner = (centre_x - hem_half, hem_y), (centre_x + hem_half, hem_y)
      crotch = (0.0, waist_y + (0.13 if bottom != "shorts" else 0.12))
      chain += [hip, outer, inner, crotch]
      landmarks[6] = ((outer[0] + inner[0]) / 2, hem_y)
      if bottom == "joggers":  # elastic cuff
        lines.append(np.array([(outer[0], hem_y - 0.04), (inner[0], hem_y - 0.04)]))
      closure_end = waist_y + 0.1
    if not top:
      lines.append(np.array([(-waist_w, 0.035), (waist_w, 0.035)]))  # waistband
  outline = np.array(chain + _mirror(chain)[:-1] if chain[0][0] == 0.0 else chain + _mirror(chain))
  # Right-hand landmarks mirror the left ones.
  for left in (0, 2, 4, 6):
    landmarks[left + 1] = (-landmarks[left][0], landmarks[left][1])
  used = np.zeros(schema.NUM_LANDMARKS, bool)
  used[list(schema.SLOTS_BY_CLOTHES_TYPE[spec.clothes_type])] = True
  landmarks[~used] = 0.0
  _add_parts(spec, neck_dip if top else 0.0, closure_end, waist_w, lines, circles, top)
  return Geometry([outline, *extra], landmarks, used, circles, lines)


def _add_parts(spec, top_y, end_y, waist_w, lines, circles, top):
  """Pockets, buttons and zip, down the centre front."""
  start = top_y + 0.03
  if "zip" in spec.parts:
    end = end_y - 0.02 if top else 0.12
    lines.append(np.array([(0.0, start if top else 0.04), (0.0, end)]))
  if "button" in spec.parts:
    x = 0.025 if "zip" in spec.parts else 0.0
    stop = end_y - 0.04 if top else 0.06
    for y in np.linspace(start + 0.01, max(stop, start + 0.02), 5 if top else 1):
      circles.append((x, float(y), 0.014))
  if "pocket" in spec.parts:
    py = (end_y - 0.16) if top else 0.1
    for sign in (-1, 1):
      x0 = sign * (waist_w * 0.35 if not top else 0.055)
      x1 = sign * (waist_w * 0.9 if not top else 0.13)
      lines.append(np.array([(x0, py), (x0, py + 0.09), (x1, py + 0.09), (x1, py), (x0, py)]))
