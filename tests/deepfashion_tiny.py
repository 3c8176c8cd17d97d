"""Writes tiny DeepFashion benchmark folders in the released formats (tests).

Each `write_*` returns the truth per image name so tests can compare what the
builder produced with what was written.
"""

from __future__ import annotations

import io
import pathlib
import zipfile

import numpy as np
from PIL import Image

from fashionnet_jax.data import records

SLOTS = {1: (0, 1, 2, 3, 6, 7), 2: (4, 5, 6, 7), 3: tuple(range(8))}
CATEGORIES = (
    ["Anorak", "Blazer", "Blouse"]
    + [f"Cat_{i}" for i in range(3, 47)]
    + ["Skirt", "Dress", "Jumpsuit"]
)
CATEGORY_TYPES = [1] * 47 + [2, 3, 3]


def jpeg(width: int, height: int, seed: int) -> bytes:
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="JPEG")
  return buf.getvalue()


def write_list(
    path: pathlib.Path,
    header: str | None,
    rows: list[str],
    crlf: bool = False,
    count: int | None = None,
) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  lines = [str(len(rows) if count is None else count)]
  lines += [header] if header is not None else []
  eol = "\r\n" if crlf else "\n"
  path.write_bytes((eol.join(lines + rows) + eol).encode())


def write_category_cloth(anno, crlf):
  """list_category_cloth.txt (the 50 categories and their clothes types), as Anno/ and
  Anno_fine/ both hold it."""
  write_list(
      anno / "list_category_cloth.txt",
      "category_name  category_type",
      [f"{c:<15}{t}" for c, t in zip(CATEGORIES, CATEGORY_TYPES)],
      crlf,
  )


def landmark_row(rng, clothes_type, width, height, pad):
  """(`vis x y` triples text, xy[8,2], vis[8]) in the type's own order."""
  xy = np.zeros((8, 2), np.float32)
  vis = np.full((8,), 3, np.int8)
  parts = []
  for slot in SLOTS[clothes_type]:
    v, x, y = int(rng.integers(0, 3)), int(rng.integers(0, width)), int(rng.integers(0, height))
    xy[slot], vis[slot] = (x, y), v
    parts.append(f"{v} {x:03d} {y:03d}")
  if pad:
    parts += ["0 000 000"] * (8 - len(parts))
  return "  ".join(parts), xy, vis


def write_images(img_dir: pathlib.Path, images: dict[str, bytes], as_zip: bool) -> None:
  img_dir.mkdir(parents=True, exist_ok=True)
  if as_zip:
    with zipfile.ZipFile(img_dir / "img.zip", "w") as z:
      for name, data in images.items():
        z.writestr(name, data)
  else:
    for name, data in images.items():
      (img_dir / name).parent.mkdir(parents=True, exist_ok=True)
      (img_dir / name).write_bytes(data)


def write_benchmark(
    manual_dir,
    config: str,
    n: int = 12,
    *,
    as_zip=True,
    crlf=False,
    pad=False,
    seed=0,
    anno="Anno",
    photos=None,
):
  """Writes one benchmark folder; returns {name: truth dict}.

  `photos` (JPEG bytes, used in turn) replaces the random pixels with real images,
  each at its own size.
  """
  rng = np.random.default_rng(seed)
  root = pathlib.Path(manual_dir) / records.BENCHMARK_DIRS[config]
  a, ev = root / anno, root / "Eval"
  statuses = {"inshop": ["train", "query", "gallery"]}.get(config, ["train", "val", "test"])
  truth, images = {}, {}
  bbox_rows, lm_rows, part_rows, cat_rows, attr_rows = [], [], [], [], []
  pairs = []
  for i in range(n):
    ct = 1 + i % 3
    w, h = 48 + 8 * (i % 3), 40 + 8 * (i % 2)
    if photos:
      w, h = Image.open(io.BytesIO(photos[i % len(photos)])).size
    elif config == "inshop":  # every released In-shop img/ image is 256×256
      w, h = 256, 256
    status = statuses[i % 3]
    item = f"id_{i // 2:08d}"
    if config == "category_attribute":
      name = f"img/Sheer_Pleated-Front_Blouse_{i % 2}/img_{i:08d}.jpg"
    elif config == "inshop":
      name = f"img/WOMEN/Blouses_Shirts/{item}/{i % 2 + 1:02d}_1_front.jpg"
      status = statuses[(i // 2) % 3]
    elif config == "consumer2shop":
      kind = "comsumer" if i % 2 == 0 else "shop"
      name = f"img/TOPS/T_Shirt/{item}/{kind}_01.jpg"
      status = statuses[(i // 2) % 3]
    else:
      name = f"img/img_{i:08d}.jpg"
    x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    x2, y2 = int(rng.integers(w // 2, w)), int(rng.integers(h // 2, h))
    triples, xy, vis = landmark_row(rng, ct, w, h, pad or config == "landmarks")
    t = dict(
        status=status,
        width=w,
        height=h,
        bbox=(x1, y1, x2, y2),
        clothes_type=ct,
        xy=xy,
        vis=vis,
        variation_type=1 + i % 5,
    )
    box = f"{x1:03d} {y1:03d} {x2:03d} {y2:03d}"
    pad_name = name.ljust(60)
    if config == "category_attribute":
      t["category"] = 1 + i % 50
      t["attributes"] = rng.choice(np.array([-1, 0, 1], np.int8), 1000)
      cat_rows.append(f"{pad_name}{t['category']:>3d}")
      attr_rows.append(pad_name + " ".join(f"{v:2d}" for v in t["attributes"]))
      bbox_rows.append(f"{pad_name}{box}")
      lm_rows.append(f"{pad_name} {ct}  {triples}")
      part_rows.append(f"{pad_name}{status}")
    elif config == "landmarks":
      bbox_rows.append(f"{pad_name}{box}")
      lm_rows.append(f"{pad_name} {ct}  {t['variation_type']}  {triples}")
      part_rows.append(f"{pad_name}{status}")
    else:
      t["item_id"] = item
      t["pose_type"] = 1 + i % 6
      t["source"] = 0 if "shop" in name else 1  # shop, consumer
      third = t["pose_type"] if config == "inshop" else t["source"] + 1
      bbox_rows.append(f"{pad_name}{ct}  {third}  {box}")
      lm_rows.append(f"{pad_name}{ct}  {t['variation_type']}  {triples}")
      if config == "inshop":
        part_rows.append(f"{pad_name}{item}  {status}")
      elif i % 2 == 1:  # (consumer, shop) pair of item i // 2
        consumer = name.replace("shop_01", "comsumer_01")
        pairs.append(f"{consumer.ljust(50)}{name.ljust(50)}{item}  {status}")
    truth[name] = t
    images[name] = photos[i % len(photos)] if photos else jpeg(w, h, seed + i)

  if config == "category_attribute":
    write_category_cloth(a, crlf)
    write_list(
        a / "list_attr_cloth.txt",
        "attribute_name  attribute_type",
        [f"{'attr ' + str(k) + ' print':<29}{1 + k % 5}" for k in range(1000)],
        crlf,
    )
    write_list(a / "list_category_img.txt", "image_name  category_label", cat_rows, crlf)
    write_list(a / "list_attr_img.txt", "image_name  attribute_labels", attr_rows, crlf)
    write_list(a / "list_bbox.txt", "image_name  x_1  y_1  x_2  y_2", bbox_rows, crlf)
    write_list(
        a / "list_landmarks.txt",
        "image_name  clothes_type  landmark_visibility_1 ...",
        lm_rows,
        crlf,
    )
    write_list(ev / "list_eval_partition.txt", "image_name  evaluation_status", part_rows, crlf)
  elif config == "landmarks":
    write_list(a / "list_bbox.txt", "image_name  x_1  y_1  x_2  y_2", bbox_rows, crlf)
    write_list(
        a / "list_landmarks.txt", "image_name  clothes_type  variation_type  ...", lm_rows, crlf
    )
    write_list(ev / "list_eval_partition.txt", "image_name  evaluation_status", part_rows, crlf)
  else:
    suffix = "inshop" if config == "inshop" else "consumer2shop"
    third = "pose_type" if config == "inshop" else "source_type"
    write_list(
        a / f"list_bbox_{suffix}.txt",
        f"image_name  clothes_type  {third}  x_1  y_1  x_2  y_2",
        bbox_rows,
        crlf,
    )
    write_list(
        a / f"list_landmarks_{suffix}.txt",
        "image_name  clothes_type  variation_type  ...",
        lm_rows,
        crlf,
    )
    items = sorted({t["item_id"] for t in truth.values()})
    write_list(a / f"list_item_{suffix}.txt", None, items, crlf)
    if config == "inshop":
      write_list(
          ev / "list_eval_partition.txt", "image_name  item_id  evaluation_status", part_rows, crlf
      )
    else:
      write_list(
          ev / "list_eval_partition.txt",
          "image_pair_name_1  image_pair_name_2  item_id" "  evaluation_status",
          pairs,
          crlf,
      )
  write_images(root / "Img", images, as_zip)
  return truth


FINE_SPLIT_FILES = {"train": "train", "validation": "val", "test": "test"}


def write_fine(manual_dir, n: int = 9, *, crlf=False, triples=False, seed=0, released_list=None):
  """Writes `Category and Attribute Prediction Benchmark/Anno_fine/` (2020) and
  Img/; returns {split: [truth dict per line of <split>.txt]}.

  Per split: `<split>.txt` (image names, no count line) and, line for line,
  `_cate` (1-based label), `_attr` (26 values, 1 / 0), `_bbox` (x_1 y_1 x_2 y_2)
  and `_landmarks` (`x y` per landmark of the category's clothes type, padded to
  8 with `0 0`; `vis x y` triples with `triples=True`).

  released_list: also write the per-image `list_landmarks.txt` with `vis x y`
  triples, in "Anno_fine" (with a variation_type column) or "Anno_coarse" (without);
  its third landmark of every third image sits elsewhere. The truth's visibility
  of an `x y` pair is the list's where it lists the same position, else occluded (1).
  """
  rng = np.random.default_rng(seed)
  root = pathlib.Path(manual_dir) / records.BENCHMARK_DIRS["category_attribute"]
  a = root / "Anno_fine"
  eol = "\r\n" if crlf else "\n"
  write_category_cloth(a, crlf)
  write_list(
      a / "list_attr_cloth.txt",
      "attribute_name   attribute_type",
      [f"{'fine_' + str(k):<21}{1 + k % 6}" for k in range(26)],
      crlf,
  )
  # Categories of each clothes type: Blouse (upper), Skirt (lower), Dress (full).
  labels = {1: 3, 2: 48, 3: 49}
  truth, images, list_rows = {}, {}, []
  for s, (split, stem) in enumerate(FINE_SPLIT_FILES.items()):
    lines = {k: [] for k in ("", "_cate", "_attr", "_bbox", "_landmarks")}
    truth[split] = []
    for i in range(n // 3 + (s < n % 3)):
      k = 10 * s + i
      ct = 1 + k % 3
      w, h = 48 + 8 * (k % 3), 40 + 8 * (k % 2)
      name = f"img/Striped_Fine_Dress_{k % 2}/img_{k:08d}.jpg"
      x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
      x2, y2 = int(rng.integers(w // 2, w)), int(rng.integers(h // 2, h))
      attrs = rng.integers(0, 2, 26).astype(np.int8)
      xy = np.zeros((8, 2), np.float32)
      vis = np.full((8,), 3, np.int8)
      fields = []
      listed = []
      for j, slot in enumerate(SLOTS[ct]):
        x, y = int(rng.integers(1, w)), int(rng.integers(1, h))
        v = int(rng.integers(0, 3))
        listed.append(f"{v} {x:03d} {y:03d}")
        if not triples and not released_list:
          v = 1  # no visibility anywhere: unknown, occluded
        if not triples and j == 1 and k % 4 == 0:  # (0, 0): no position
          x, y, v = 0, 0, 1
        if released_list and not triples and j == 2 and k % 3 == 0:  # listed elsewhere
          listed[-1] = f"{v} {x + 1:03d} {y:03d}"
          v = 1
        xy[slot], vis[slot] = (x, y), v
        fields.append(f"{v} {x} {y}" if triples else f"{x} {y}")
      variation = "  1" if released_list == "Anno_fine" else ""
      list_rows.append(f"{name.ljust(60)} {ct}{variation}  " + "  ".join(listed))
      fields += ["0 0 0" if triples else "0 0"] * (8 - len(fields))
      lines[""].append(name)
      lines["_cate"].append(str(labels[ct]))
      lines["_attr"].append(" ".join(str(v) for v in attrs) + " ")
      lines["_bbox"].append(f"{x1} {y1} {x2} {y2}")
      lines["_landmarks"].append(" ".join(fields) + " ")
      truth[split].append(
          dict(
              name=name,
              width=w,
              height=h,
              bbox=(x1, y1, x2, y2),
              clothes_type=ct,
              category=labels[ct],
              xy=xy,
              vis=vis,
              attributes=np.where(attrs == 1, 1, -1),
          )
      )
      images[name] = jpeg(w, h, seed + k)
    for suffix, rows in lines.items():
      a.mkdir(parents=True, exist_ok=True)
      (a / f"{stem}{suffix}.txt").write_bytes("".join(r + eol for r in rows).encode())
  if released_list:
    write_list(
        root / released_list / "list_landmarks.txt",
        "image_name  clothes_type  landmark_visibility_1 ...",
        list_rows,
        crlf,
    )
  write_images(root / "Img", images, as_zip=True)
  return truth
