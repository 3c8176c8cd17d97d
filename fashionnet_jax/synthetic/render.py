"""Drawing a synthetic garment into an image: pose, textures, background, occluders.

`render_garment(spec, size, seed)` returns the image with the exact landmarks,
visibilities and bbox of what it drew. Pixel coordinates: (x, y) = (column,
row), integer values at pixel centres; a landmark is the pixel
`(round(y), round(x))`. Visibility: 0 visible, 1 occluded (an occluder covers
the landmark's pixel), 2 truncated (the point falls outside the image), 3 slot
unused by the clothes type. Truncated landmarks keep their true (outside)
coordinates here; the annotation writer clips them into the image.

With `markers=True` each used landmark gets a 5x5 square of its slot's
`MARKER_COLOURS` colour, drawn under the occluders; the rest of the image is
kept within [16, 239] so the marker colours (components 0 or 255) occur
nowhere else, and a test can find each slot's marker after any transform.
"""

import dataclasses
import io

import numpy as np
from PIL import Image, ImageDraw

from fashionnet_jax import schema
from fashionnet_jax.synthetic import garments
from fashionnet_jax.synthetic import vocab

MARKER_COLOURS = (
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
    (0, 0, 0),
)


@dataclasses.dataclass(frozen=True)
class Scene:
  """How one view of a garment is shot."""

  scale: float = 0.8  # garment's fitted extent / image extent (>1 crops)
  rotation: float = 0.0  # degrees, counter-clockwise on screen
  shift: tuple = (0.0, 0.0)  # centre offset, fraction of (width, height)
  squash: float = 1.0  # horizontal squeeze (side view)
  background: str = "solid"  # solid | gradient | noise | clutter
  occluders: int = 0
  front_parts: bool = True  # False for back views: no buttons, zip, pockets

  @property
  def variation_type(self):
    """DeepFashion's: 1 normal, 2 medium pose, 3 large pose, 4/5 medium/large zoom-in."""
    if self.scale > 1.2:
      return 5
    if self.scale > 1.0:
      return 4
    if abs(self.rotation) > 18 or self.squash < 0.8:
      return 3
    if abs(self.rotation) > 7:
      return 2
    return 1


def random_scene(rng, kind):
  """A random `Scene`: 'shop' (plain, centred) or 'consumer' (busy, posed, occluded)."""
  if kind == "shop":
    return Scene(
        scale=float(rng.uniform(0.72, 0.88)),
        rotation=float(rng.uniform(-3, 3)),
        shift=tuple(float(s) for s in rng.uniform(-0.03, 0.03, 2)),
        background="solid" if rng.random() < 0.7 else "gradient",
    )
  if kind == "consumer":
    zoom = rng.random() < 0.25
    return Scene(
        scale=float(rng.uniform(1.02, 1.35) if zoom else rng.uniform(0.5, 0.9)),
        rotation=float(rng.normal(0, 14)),
        shift=tuple(float(s) for s in rng.uniform(-0.15, 0.15, 2)),
        squash=float(rng.uniform(0.75, 1.0)),
        background=("noise", "clutter", "gradient")[rng.integers(3)],
        occluders=int(rng.integers(0, 4)),
    )
  raise ValueError(f"unknown scene kind {kind!r} (expected 'shop' or 'consumer')")


@dataclasses.dataclass
class Rendering:
  image: np.ndarray  # uint8 [H, W, 3]
  landmarks: np.ndarray  # float [8, 2] pixels (x, y)
  visibility: np.ndarray  # int [8]
  bbox: tuple  # (x1, y1, x2, y2) inclusive pixels, clipped to the image
  mask: np.ndarray  # bool [H, W]: garment pixels (before occluders)


def render_garment(spec, size, seed, scene=None, markers=False):
  """Draws `spec`; returns (image uint8 HxWx3, landmarks [8,2], visibility [8], bbox)."""
  r = render(spec, size, seed, scene, markers)
  return r.image, r.landmarks, r.visibility, r.bbox


def render(spec, size, seed, scene=None, markers=False):
  """Like `render_garment`, returning a `Rendering` (with the garment mask)."""
  height, width = (size, size) if np.isscalar(size) else size
  rng = np.random.default_rng(seed)
  scene = scene or random_scene(rng, "shop")
  geom = garments.garment_geometry(spec)
  to_image, to_canonical, scale = _pose(geom, scene, width, height)

  mask_img = Image.new("L", (width, height), 0)
  draw = ImageDraw.Draw(mask_img)
  for poly in geom.polygons:
    draw.polygon([tuple(p) for p in to_image(poly)], fill=255)
  mask = np.asarray(mask_img) > 0

  # The cloth is computed at the garment's pixels only (its canonical u, v).
  ys, xs = np.nonzero(mask)
  u, v = to_canonical(xs.astype(np.float32), ys.astype(np.float32))
  image = np.array(_background(scene.background, height, width, rng), np.float32)
  image[ys, xs] = _cloth(spec, u, v, rng)
  pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
  _draw_details(ImageDraw.Draw(pil), geom, spec, scene, to_image, scale)
  _draw_trims(ImageDraw.Draw(pil), geom, spec, to_image, scale)

  landmarks = to_image(geom.landmarks)
  landmarks[~geom.used] = 0.0
  occluder_mask = _occluders(pil, scene, landmarks[geom.used], rng, width, height)
  if markers:
    pil = Image.fromarray(np.clip(np.asarray(pil), 16, 239).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for slot in np.flatnonzero(geom.used):
      x, y = np.round(landmarks[slot]).astype(int)
      draw.rectangle([x - 2, y - 2, x + 2, y + 2], fill=MARKER_COLOURS[slot])
    _occluders(
        pil,
        scene,
        landmarks[geom.used],
        np.random.default_rng(seed),
        width,
        height,
        redraw=occluder_mask,
    )
  visibility = np.full(schema.NUM_LANDMARKS, schema.UNUSED)
  for slot in np.flatnonzero(geom.used):
    x, y = np.round(landmarks[slot]).astype(int)
    if not (0 <= x < width and 0 <= y < height):
      visibility[slot] = 2
    else:
      visibility[slot] = 1 if occluder_mask[1][y, x] else 0
  rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
  bbox = (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])) if rows.size else (0, 0, 0, 0)
  return Rendering(np.asarray(pil), landmarks.astype(np.float32), visibility, bbox, mask)


def _pose(geom, scene, width, height):
  """Affine maps canonical <-> image for the scene's scale, rotation, shift, squash."""
  pts = np.concatenate(geom.polygons)
  lo, hi = pts.min(0), pts.max(0)
  centre = (lo + hi) / 2
  ext = (hi - lo) * [scene.squash, 1.0]
  scale = scene.scale * min(width / ext[0], height / ext[1])
  theta = np.deg2rad(scene.rotation)
  # Counter-clockwise on screen, where y points down.
  rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
  lin = rot @ np.diag([scene.squash, 1.0]) * scale
  offset = np.array([width * (0.5 + scene.shift[0]), height * (0.5 + scene.shift[1])])
  inv = np.linalg.inv(lin).astype(np.float32)
  c32, o32 = centre.astype(np.float32), offset.astype(np.float32)

  def to_image(p):
    return (np.asarray(p, float) - centre) @ lin.T + offset

  def to_canonical(x, y):
    dx, dy = x - o32[0], y - o32[1]
    return (inv[0, 0] * dx + inv[0, 1] * dy + c32[0], inv[1, 0] * dx + inv[1, 1] * dy + c32[1])

  return to_image, to_canonical, scale


def _smooth_noise(rng, height, width, cells):
  """Low-frequency noise in [0, 1]: a random grid, bilinearly upsampled."""
  grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
  return np.asarray(grid.resize((width, height), Image.BILINEAR), np.float32) / 255


def _cloth(spec, u, v, rng):
  """The garment's colour at canonical coordinates (u, v): texture x fabric."""
  base = np.array(spec.rgb, np.float32)
  bright = base.mean() > 140
  second = base * 0.45 if bright else base + (255 - base) * 0.6
  t = spec.texture
  if t == "striped":
    pattern = np.sin(2 * np.pi * v / 0.06) > 0.2
  elif t == "polka dot":
    pattern = ((u % 0.06) - 0.03) ** 2 + ((v % 0.06) - 0.03) ** 2 < 0.011**2
  elif t == "plaid":
    pattern = (np.floor(u / 0.07) + np.floor(v / 0.07)) % 2 > 0
  elif t == "floral":  # blobs: a product of a few random waves, thresholded
    k = rng.uniform(20, 40, (3, 2)) * rng.choice([-1, 1], (3, 2))
    phase = rng.uniform(0, 2 * np.pi, 3)
    waves = [np.sin(k[i, 0] * u + k[i, 1] * v + phase[i]) for i in range(3)]
    pattern = waves[0] * waves[1] + 0.5 * waves[2] > 0.55
  else:
    pattern = np.zeros(u.shape, bool)
  colour = np.where(pattern[..., None], second, base)
  f = spec.fabric
  if f == "knit":  # vertical ribs of small chevrons
    shade = 1 + 0.13 * np.sign(np.sin(2 * np.pi * (u / 0.018 + np.abs((v / 0.018) % 2 - 1))))
  elif f == "denim":  # diagonal twill and fibre noise
    shade = (
        1
        + 0.1 * np.sin(2 * np.pi * (u + v) / 0.012)
        + 0.05 * rng.standard_normal(u.shape, np.float32)
    )
  elif f == "lace":  # a mesh of small holes
    shade = np.where(
        ((u % 0.022) - 0.011) ** 2 + ((v % 0.022) - 0.011) ** 2 < 0.005**2,
        np.float32(0.55),
        np.float32(1.0),
    )
  elif f == "leather":  # a broad specular band and a soft grain
    shade = (
        1
        + 0.45 * np.exp(-((u - 0.35 * v + 0.05) ** 2) / 0.004)
        + 0.02 * rng.standard_normal(u.shape, np.float32)
    )
  else:
    shade = np.ones(u.shape, np.float32)
  shade = shade * (1.05 - 0.12 * np.clip(v, 0, 1))  # soft top light
  return colour * shade[..., None]


def _background(kind, height, width, rng):
  base = rng.uniform(150, 245, 3) if kind != "clutter" else rng.uniform(40, 220, 3)
  if kind == "solid":
    return np.broadcast_to(base, (height, width, 3))
  if kind == "gradient":
    other = rng.uniform(60, 240, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    return base * (1 - t) + other * t + np.zeros((1, width, 1))
  noise = np.stack(
      [_smooth_noise(rng, height, width, int(rng.integers(3, 9))) for _ in range(3)], -1
  )
  img = base * 0.4 + noise * 150
  if kind == "clutter":  # busy scenery: random blocks and bars
    img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):
      x, y = rng.uniform(0, width), rng.uniform(0, height)
      w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.4) * height
      colour = tuple(int(c) for c in rng.integers(0, 256, 3))
      if rng.random() < 0.5:
        draw.rectangle([x, y, x + w, y + h], fill=colour)
      else:
        draw.ellipse([x, y, x + w, y + h], fill=colour)
    img = np.asarray(img, np.float32)
  return img


def _draw_details(draw, geom, spec, scene, to_image, scale):
  """Outline, seams and the front parts, darker than the cloth."""
  dark = tuple(int(c * 0.35) for c in spec.rgb)
  width = max(1, int(round(scale * 0.008)))
  for poly in geom.polygons:
    pts = [tuple(p) for p in to_image(poly)]
    draw.line(pts + pts[:1], fill=dark, width=width)
  if not scene.front_parts:
    return
  for line in geom.lines:
    draw.line([tuple(p) for p in to_image(line)], fill=dark, width=width)
  for cx, cy, r in geom.circles:
    ((x, y),) = to_image([(cx, cy)])
    rr = max(1.5, r * scale)
    draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=dark)


# Half-diagonal of a trim's patch, in garment units (a garment is about 0.5-1 tall):
# a few pixels at the demo's 64 px, so a trim shows only close to its landmarks.
TRIM_SIZE = 0.035


def _draw_trims(draw, geom, spec, to_image, scale):
  """The local attributes: a contrast diamond at each of the trim's landmarks."""
  bright = np.mean(spec.rgb) > 140
  colour = (20, 20, 25) if bright else (245, 245, 240)
  r = max(1.5, TRIM_SIZE * scale)
  for trim in spec.trims:
    for slot in vocab.LOCAL_SLOTS[trim]:
      if not geom.used[slot]:
        continue
      ((x, y),) = to_image(geom.landmarks[slot : slot + 1])
      draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=colour)


def _occluders(pil, scene, points, rng, width, height, redraw=None):
  """Draws the scene's occluders (blobs, often over a landmark).

  Returns (the shapes, their mask). With `redraw` (a previous return value)
  draws those same shapes again instead of new ones.
  """
  draw = ImageDraw.Draw(pil)
  if redraw is not None:
    for kind, box, colour in redraw[0]:
      getattr(draw, kind)(box, fill=colour)
    return redraw
  shapes = []
  mask_img = Image.new("L", (width, height), 0)
  mdraw = ImageDraw.Draw(mask_img)
  for _ in range(scene.occluders):
    size = rng.uniform(0.08, 0.22) * np.array([width, height])
    if len(points) and rng.random() < 0.6:  # hide a landmark
      centre = points[rng.integers(len(points))] + rng.normal(0, 0.03, 2) * [width, height]
    else:
      centre = rng.uniform(0, 1, 2) * [width, height]
    box = [
        float(centre[0] - size[0] / 2),
        float(centre[1] - size[1] / 2),
        float(centre[0] + size[0] / 2),
        float(centre[1] + size[1] / 2),
    ]
    kind = "ellipse" if rng.random() < 0.5 else "rectangle"
    colour = tuple(int(c) for c in rng.integers(20, 236, 3))
    getattr(draw, kind)(box, fill=colour)
    getattr(mdraw, kind)(box, fill=255)
    shapes.append((kind, box, colour))
  return shapes, np.asarray(mask_img) > 0


def draw_jpeg_job(job):
  """(spec, size, seed, scene, quality) -> (JPEG bytes, landmarks, visibility, bbox).

  A module-level function of plain arguments, for worker processes.
  """
  spec, size, seed, scene, quality = job
  r = render(spec, size, seed, scene)
  buf = io.BytesIO()
  Image.fromarray(r.image).save(buf, format="JPEG", quality=quality)
  return buf.getvalue(), r.landmarks, r.visibility, r.bbox
