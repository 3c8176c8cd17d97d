"""Pictures of predictions: landmarks, bbox and labels on a photo; retrieval grids (PIL).

`draw_prediction(image, record)` takes one `predict` JSON record; landmarks are
drawn only for the slots that apply to the predicted clothes type: a filled dot
when predicted visible, a hollow ring with a cross when predicted invisible.
`draw_retrieval_grid(rows)` puts each query beside its ranked results with
their cosine scores.
"""

from __future__ import annotations

import os

from PIL import Image, ImageDraw, ImageFont, ImageOps

# One colour per landmark slot; a left/right pair shares a hue (left darker).
SLOT_COLOURS = (
    (200, 30, 30),
    (255, 110, 110),
    (30, 140, 30),
    (110, 220, 110),
    (30, 60, 200),
    (110, 150, 255),
    (190, 120, 0),
    (255, 190, 60),
)
SHORT_NAMES = ("LC", "RC", "LS", "RS", "LW", "RW", "LH", "RH")
BBOX_COLOUR = (255, 200, 0)
MIN_SIDE = 384  # small photos are enlarged so that marks and text stay legible


def _font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError):  # PIL without FreeType: the fixed bitmap font
    return ImageFont.load_default()


def open_upright(image) -> Image.Image:
  """A path or PIL image → RGB, turned by its EXIF orientation (as `load_image`)."""
  if not isinstance(image, Image.Image):
    with Image.open(image) as img:
      image = ImageOps.exif_transpose(img.convert("RGB"))
  return image.convert("RGB")


def _enlarged(image: Image.Image, min_side: int):
  scale = max(1.0, min_side / min(image.size))
  if scale > 1.0:
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
  return image, scale


def _text_panel(lines, width: int, font, line_height: int) -> Image.Image:
  panel = Image.new("RGB", (width, line_height * len(lines) + 8), (255, 255, 255))
  draw = ImageDraw.Draw(panel)
  for i, (text, colour) in enumerate(lines):
    draw.text((6, 4 + i * line_height), text, fill=colour, font=font)
  return panel


def draw_prediction(image, record: dict, *, min_side: int = MIN_SIDE) -> Image.Image:
  """The photo with the bbox, the applying landmarks and the top labels below it."""
  photo, scale = _enlarged(open_upright(image), min_side)
  draw = ImageDraw.Draw(photo)
  radius = max(4, round(min(photo.size) / 70))
  # Pixel indices (as the records write them) of the photo -> of the enlarged photo:
  # pixel p's centre p + 0.5 scales, so p -> (p + 0.5)·scale - 0.5.
  enlarge = lambda v: (v + 0.5) * scale - 0.5  # pylint: disable=unnecessary-lambda-assignment
  if record.get("bbox"):
    x1, y1, x2, y2 = (enlarge(v) for v in record["bbox"])
    draw.rectangle((x1, y1, x2, y2), outline=BBOX_COLOUR, width=max(2, radius // 2))
  small = _font(max(10, radius * 2))
  for slot, mark in enumerate(record["landmarks"]):
    if not mark["applies"]:
      continue
    x, y, colour = enlarge(mark["x"]), enlarge(mark["y"]), SLOT_COLOURS[slot]
    box = (x - radius, y - radius, x + radius, y + radius)
    if mark["visible"]:
      draw.ellipse(box, fill=colour, outline=(255, 255, 255), width=2)
    else:
      draw.ellipse(box, outline=colour, width=2)
      draw.line((x - radius, y - radius, x + radius, y + radius), fill=colour, width=2)
      draw.line((x - radius, y + radius, x + radius, y - radius), fill=colour, width=2)
    draw.text(
        (x + radius + 2, y - radius),
        SHORT_NAMES[slot],
        fill=colour,
        font=small,
        stroke_width=2,
        stroke_fill=(255, 255, 255),
    )

  font_size = max(12, photo.width // 32)
  font = _font(font_size)
  black, grey = (0, 0, 0), (90, 90, 90)
  lines = [
      (f"{os.path.basename(str(record['image']))}  ({record.get('clothes_type')}-body)", black)
  ]
  lines += [
      (f"{c['name']}  {c['probability']:.2f}", black if i == 0 else grey)
      for i, c in enumerate(record["category"][:3])
  ]
  if record["attributes"]:
    text = "attributes: " + ", ".join(
        f"{a['name']} {a['probability']:.2f}" for a in record["attributes"][:4]
    )
    lines += [(line, grey) for line in _wrap(text, font, photo.width - 12)]
  lines.append(("dot: visible   ring+cross: invisible", grey))
  panel = _text_panel(lines, photo.width, font, round(font_size * 1.35))
  canvas = Image.new("RGB", (photo.width, photo.height + panel.height), (255, 255, 255))
  canvas.paste(photo, (0, 0))
  canvas.paste(panel, (0, photo.height))
  return canvas


def _thumbnail(image, size: int) -> Image.Image:
  """The image fitted into size×size on white, aspect kept."""
  image = open_upright(image)
  image = ImageOps.contain(image, (size, size), Image.BICUBIC)
  tile = Image.new("RGB", (size, size), (255, 255, 255))
  tile.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
  return tile


def draw_retrieval_grid(rows, *, tile: int = 128) -> Image.Image:
  """rows: [(query image, [(result image, label, score), ...]), ...] → one picture.

  Each row is the query (framed in blue) followed by its results, best first,
  each captioned with its rank, cosine score and label (e.g. its gallery path).
  """
  font = _font(max(10, tile // 11))
  caption = round(tile / 11 * 2.6)
  gap = 6
  columns = 1 + max((len(results) for _, results in rows), default=0)
  width = columns * (tile + gap) + gap * 3
  height = len(rows) * (tile + caption + gap) + gap
  canvas = Image.new("RGB", (width, height), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for r, (query, results) in enumerate(rows):
    y = gap + r * (tile + caption + gap)
    canvas.paste(_thumbnail(query, tile), (gap, y))
    draw.rectangle((gap - 3, y - 3, gap + tile + 2, y + tile + 2), outline=(30, 60, 200), width=3)
    draw.text((gap, y + tile + 2), "query", fill=(30, 60, 200), font=font)
    draw.text(
        (gap, y + tile + 2 + caption // 2),
        _fit(os.path.basename(str(query)), font, tile),
        fill=(90, 90, 90),
        font=font,
    )
    for c, (image, label, score) in enumerate(results):
      x = gap * 4 + (c + 1) * (tile + gap) - gap
      canvas.paste(_thumbnail(image, tile), (x, y))
      draw.text((x, y + tile + 2), f"#{c + 1}  {score:.4f}", fill=(0, 0, 0), font=font)
      draw.text(
          (x, y + tile + 2 + caption // 2),
          _fit(str(label), font, tile),
          fill=(90, 90, 90),
          font=font,
      )
  return canvas


def _fit(text: str, font, width: int) -> str:
  """`text`, cut from the left ('…tail') until it fits `width` pixels."""
  if font.getlength(text) <= width:
    return text
  while text and font.getlength("…" + text) > width:
    text = text[1:]
  return "…" + text


def _wrap(text: str, font, width: int) -> list[str]:
  """Greedy word wrap to `width` pixels."""
  lines, line = [], ""
  for word in text.split(" "):
    candidate = f"{line} {word}".strip()
    if line and font.getlength(candidate) > width:
      lines.append(line)
      candidate = word
    line = candidate
  return lines + [line] if line else lines
