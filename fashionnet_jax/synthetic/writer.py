"""Writes synthetic DeepFashion: the four benchmarks' released layout, with drawn garments.

`generate(out_dir, images, seed, ...)` writes, under out_dir, `Category and
Attribute Prediction Benchmark`, `In-shop Clothes Retrieval Benchmark`,
`Consumer-to-shop Clothes Retrieval Benchmark` and `Fashion Landmark
Detection Benchmark` (the first with the 2020 `Anno_fine/` too), each with
`Anno/`, `Eval/` and
`Img/` (`img.zip` for Category and Consumer-to-shop, the extracted `img/` for
the others), in the real file formats (docs/deepfashion.md), so
the TFDS builder reads it with `--manual_dir`. The garments (17 categories
with their own silhouettes, textures, fabrics, parts, colours) come from
`synthetic.garments` / `synthetic.render`; landmarks, visibilities, bboxes
and attributes are exactly what was drawn. Same seed, same bytes (whatever
the number of workers).
"""

import concurrent.futures
import dataclasses
import multiprocessing
import os
import shutil

import numpy as np

from fashionnet_jax import schema
from fashionnet_jax.schema import BENCHMARK_DIRS
from fashionnet_jax.synthetic import formats as fmt
from fashionnet_jax.synthetic import garments
from fashionnet_jax.synthetic import render
from fashionnet_jax.synthetic import vocab

ZIPPED = ("category_attribute", "consumer2shop")
# Builder configs whose files another benchmark's folder holds: Anno_fine/ is
# written with the Category and Attribute benchmark.
WRITTEN_WITH = {"category_attribute_fine": "category_attribute"}
FINE_SPLIT_FILES = ("train", "val", "test")  # Anno_fine/<split>.txt, in Eval's names
JPEG_QUALITY = 90
# In-shop views: file suffix -> pose_type (1 front, 2 side, 3 back, 4 zoom-out, 5 zoom-in, 6 flat).
INSHOP_VIEWS = {"1_front": 1, "2_side": 2, "3_back": 3, "4_full": 4, "7_additional": 5, "6_flat": 6}
INSHOP_FOLDERS = {
    "Tee": "Tees_Tanks",
    "Tank": "Tees_Tanks",
    "Blouse": "Blouses_Shirts",
    "Hoodie": "Sweatshirts_Hoodies",
    "Blazer": "Jackets_Coats",
    "Cardigan": "Cardigans",
    "Turtleneck": "Sweaters",
    "Jeans": "Denim",
    "Joggers": "Pants",
    "Leggings": "Leggings",
    "Shorts": "Shorts",
    "Skirt": "Skirts",
    "Dress": "Dresses",
    "Jumpsuit": "Rompers_Jumpsuits",
    "Romper": "Rompers_Jumpsuits",
    "Kimono": "Jackets_Coats",
    "Coat": "Jackets_Coats",
}
CONSUMER2SHOP_FOLDERS = {
    "Tee": "TOPS/T_Shirt",
    "Tank": "TOPS/Tank_Top",
    "Blouse": "TOPS/Blouse",
    "Hoodie": "TOPS/Hoodie",
    "Blazer": "CLOTHING/Suit",
    "Cardigan": "CLOTHING/Knitwear",
    "Turtleneck": "TOPS/Sweater",
    "Jeans": "TROUSERS/Jeans",
    "Joggers": "TROUSERS/Leisure_Pants",
    "Leggings": "TROUSERS/Leggings",
    "Shorts": "TROUSERS/Shorts",
    "Skirt": "DRESSES/Skirt",
    "Dress": "DRESSES/Dress",
    "Jumpsuit": "CLOTHING/Jumpsuit",
    "Romper": "CLOTHING/Romper",
    "Kimono": "CLOTHING/Kimono",
    "Coat": "CLOTHING/Coat",
}


@dataclasses.dataclass
class Shot:
  """One image to draw and annotate."""

  name: str  # relative path as in the annotation files
  spec: garments.GarmentSpec
  scene: render.Scene
  size: tuple  # (height, width)
  seed: tuple
  split: str = ""
  item_id: str = ""
  extra: int = 0  # pose_type (In-shop) or source_type (Consumer-to-shop)


def _long_side(rng, long):
  """(height, width): square half the time, else the other side in [2/3, 1) of `long`."""
  if rng.random() < 0.5:
    return long, long
  short = int(rng.integers(long * 2 // 3, long))
  return (long, short) if rng.random() < 0.75 else (short, long)


def _group_sizes(rng, total, lo, hi):
  """Item sizes in [lo, hi] summing to `total` (the last item absorbs a short rest)."""
  sizes = []
  while sum(sizes) < total:
    sizes.append(int(rng.integers(lo, hi + 1)))
  sizes[-1] -= sum(sizes) - total
  if len(sizes) > 1 and sizes[-1] < lo:
    last = sizes.pop()
    sizes[-1] += last
  return sizes


def _splits(rng, n, names, fractions):
  """A shuffled assignment of `n` things to split names in the given fractions."""
  counts = [int(n * f) for f in fractions[:-1]]
  counts.append(n - sum(counts))
  # Every split gets something when there is enough to go round.
  for i in range(len(counts)):
    if counts[i] == 0 and n >= len(counts):
      j = int(np.argmax(counts))
      counts[i], counts[j] = 1, counts[j] - 1
  labels = np.repeat(np.array(names), counts)
  return list(labels[rng.permutation(n)])


def _scene(rng, kind, view=None):
  scene = render.random_scene(rng, kind)
  if view == "2_side":
    scene = dataclasses.replace(scene, squash=0.62)
  elif view == "3_back":
    scene = dataclasses.replace(scene, front_parts=False)
  elif view == "4_full":
    scene = dataclasses.replace(scene, scale=float(rng.uniform(0.5, 0.6)))
  elif view == "7_additional":  # zoomed in: hems and sleeves may leave the frame
    scene = dataclasses.replace(scene, scale=float(rng.uniform(1.1, 1.35)))
  elif view == "6_flat":
    scene = dataclasses.replace(scene, rotation=0.0, background="solid")
  return scene


def plan_category(rng, n, seed):
  shots, folder_counts = [], {}
  for size in _group_sizes(rng, n, 1, 4):
    spec = garments.random_spec(rng)
    words = [spec.colour, spec.texture, spec.fabric, spec.category]
    folder = "_".join(w.title().replace(" ", "-") for w in words)
    for _ in range(size):
      folder_counts[folder] = k = folder_counts.get(folder, 0) + 1
      kind = "shop" if rng.random() < 0.5 else "consumer"
      shots.append(
          Shot(
              f"img/{folder}/img_{k:08d}.jpg",
              spec,
              _scene(rng, kind),
              _long_side(rng, 300),
              (seed, 0, len(shots)),
          )
      )
  for shot, split in zip(shots, _splits(rng, n, ["train", "val", "test"], [0.7, 0.15, 0.15])):
    shot.split = split
  return shots


def plan_inshop(rng, n, seed):
  shots, item_number, sizes = [], 0, _group_sizes(rng, n, 2, 5)
  item_splits = _splits(rng, len(sizes), ["train", "test"], [0.5, 0.5])
  moved_one = False
  for size, split in zip(sizes, item_splits):
    spec = garments.random_spec(rng)
    item_number += int(rng.integers(1, 4))
    item_id = f"id_{item_number:08d}"
    gender = "WOMEN" if spec.clothes_type == 3 or rng.random() < 0.7 else "MEN"
    folder = f"img/{gender}/{INSHOP_FOLDERS[spec.category]}/{item_id}"
    nn = int(rng.integers(1, 5))
    views = ["1_front"] + [list(INSHOP_VIEWS)[i] for i in 1 + rng.permutation(5)]
    statuses = (
        ["train"] * size
        if split == "train"
        else (["query", "gallery"] + list(rng.choice(["query", "gallery"], size - 2)))
    )
    for k in range(size):
      view = views[k]
      item_folder = folder
      # Like the real data, an item may sit under two category folders.
      if split == "test" and k == size - 1 and size >= 3 and not moved_one:
        item_folder, moved_one = (
            f"img/{gender}/Tees_Tanks/{item_id}"
            if (INSHOP_FOLDERS[spec.category] != "Tees_Tanks")
            else f"img/{gender}/Graphic_Tees/{item_id}",
            True,
        )
      shots.append(
          Shot(
              f"{item_folder}/{nn:02d}_{view}.jpg",
              spec,
              _scene(rng, "shop", view),
              (256, 256),
              (seed, 1, len(shots)),
              str(statuses[k]),
              item_id,
              INSHOP_VIEWS[view],
          )
      )
  return shots


def plan_consumer2shop(rng, n, seed):
  shots, pairs, item_number = [], [], 0
  sizes = _group_sizes(rng, n, 3, 5)
  for size, split in zip(
      sizes, _splits(rng, len(sizes), ["train", "val", "test"], [0.6, 0.2, 0.2])
  ):
    spec = garments.random_spec(rng)
    item_number += int(rng.integers(1, 4))
    item_id = f"id_{item_number:08d}"
    folder = f"img/{CONSUMER2SHOP_FOLDERS[spec.category]}/{item_id}"
    n_shop = max(1, min(2, size // 3 + (size == 4 and rng.random() < 0.5)))
    shop, consumer = [], []
    for k in range(size):
      is_shop = k < n_shop
      name = f"shop_{k + 1:02d}.jpg" if is_shop else f"comsumer_{k - n_shop + 1:02d}.jpg"
      shot = Shot(
          f"{folder}/{name}",
          spec,
          _scene(rng, "shop" if is_shop else "consumer"),
          _long_side(rng, 300),
          (seed, 2, len(shots)),
          str(split),
          item_id,
          1 if is_shop else 2,
      )
      shots.append(shot)
      (shop if is_shop else consumer).append(shot.name)
    pairs += [(c, s, item_id, str(split)) for c in consumer for s in shop]
  return shots, pairs


def plan_landmarks(rng, n, seed):
  shots = []
  for i in range(n):
    spec = garments.random_spec(rng)
    kind = "consumer" if rng.random() < 0.6 else "shop"
    shots.append(
        Shot(
            f"img/img_{i + 1:08d}.jpg", spec, _scene(rng, kind), _long_side(rng, 512), (seed, 3, i)
        )
    )
  for shot, split in zip(shots, _splits(rng, n, ["train", "val", "test"], [0.7, 0.15, 0.15])):
    shot.split = split
  return shots


def _draw_all(shots, pool, label, verbose):
  results, step = [], max(1, len(shots) // 5)
  jobs = [(s.spec, s.size, s.seed, s.scene, JPEG_QUALITY) for s in shots]
  mapped = (
      pool.map(render.draw_jpeg_job, jobs, chunksize=8) if pool else map(render.draw_jpeg_job, jobs)
  )
  for i, result in enumerate(mapped, 1):
    results.append(result)
    if verbose and (i % step == 0 or i == len(shots)):
      print(f"  {label}: {i}/{len(shots)} images", flush=True)
  return results


def _write_benchmark(key, out_dir, n, seed, pool, eol, verbose):
  rng = np.random.default_rng([seed, list(BENCHMARK_DIRS).index(key)])
  root = os.path.join(out_dir, BENCHMARK_DIRS[key])
  pairs = None
  if key == "category_attribute":
    shots = plan_category(rng, n, seed)
  elif key == "inshop":
    shots = plan_inshop(rng, n, seed)
  elif key == "consumer2shop":
    shots, pairs = plan_consumer2shop(rng, n, seed)
  else:
    shots = plan_landmarks(rng, n, seed)
  results = _draw_all(shots, pool, key, verbose)
  sink = fmt.ImageSink(root, key in ZIPPED)
  for shot, (jpeg, *_) in zip(shots, results):
    sink.add(shot.name, jpeg)
  sink.close()

  anno, files = os.path.join(root, "Anno"), [sink.path]
  bboxes, marks = [], []
  for shot, (_, lm, vis, bbox) in zip(shots, results):
    h, w = shot.size
    ctype = shot.spec.clothes_type
    name, triples = shot.name, fmt.landmark_triples(lm, vis, ctype, w, h, key == "landmarks")
    if key == "category_attribute":  # no variation_type column in this benchmark
      bboxes.append(fmt.pad(name) + fmt.bbox_fields(bbox))
      marks.append(fmt.pad(name, fmt.LANDMARK_NAME_WIDTH) + f"{ctype}" + triples)
      continue
    extra = f"{shot.extra}  " if key in ("inshop", "consumer2shop") else ""
    bboxes.append(fmt.pad(name) + (f"{ctype}  {extra}" if extra else "") + fmt.bbox_fields(bbox))
    marks.append(
        fmt.pad(name, fmt.LANDMARK_NAME_WIDTH) + f"{ctype}  {shot.scene.variation_type}" + triples
    )
  suffix = {
      "category_attribute": "",
      "landmarks": "",
      "inshop": "_inshop",
      "consumer2shop": "_consumer2shop",
  }[key]
  bbox_cols = {
      "inshop": "image_name  clothes_type  pose_type  x_1  y_1  x_2  y_2",
      "consumer2shop": "image_name  clothes_type  source_type  x_1  y_1  x_2  y_2",
  }
  files.append(
      fmt.write_list(
          os.path.join(anno, f"list_bbox{suffix}.txt"),
          bbox_cols.get(key, "image_name  x_1  y_1  x_2  y_2"),
          bboxes,
          eol,
      )
  )
  files.append(
      fmt.write_list(
          os.path.join(anno, f"list_landmarks{suffix}.txt"),
          fmt.landmark_header(key != "category_attribute"),
          marks,
          eol,
      )
  )
  partition = os.path.join(root, "Eval", "list_eval_partition.txt")
  if key == "category_attribute":
    files += _write_category_files(anno, shots, rng, eol)
    files += _write_fine_files(os.path.join(root, "Anno_fine"), shots, results, eol)
  if key in ("category_attribute", "landmarks"):
    files.append(
        fmt.write_list(
            partition,
            "image_name  evaluation_status",
            [fmt.pad(s.name) + s.split for s in shots],
            eol,
        )
    )
    splits = {s: sum(x.split == s for x in shots) for s in ("train", "val", "test")}
  elif key == "inshop":
    files.append(
        fmt.write_list(
            partition,
            "image_name  item_id  evaluation_status",
            [fmt.pad(s.name) + f"{s.item_id}  {s.split}" for s in shots],
            eol,
        )
    )
    splits = {s: sum(x.split == s for x in shots) for s in ("train", "query", "gallery")}
  else:
    files.append(
        fmt.write_list(
            partition,
            "image_pair_name_1  image_pair_name_2  item_id  evaluation_status",
            [fmt.pad(c) + fmt.pad(s) + f"{i}  {st}" for c, s, i, st in pairs],
            eol,
        )
    )
    splits = {s: sum(p[3] == s for p in pairs) for s in ("train", "val", "test")}
  if key in ("inshop", "consumer2shop"):
    items = list(dict.fromkeys(s.item_id for s in shots))
    files.append(fmt.write_list(os.path.join(anno, f"list_item{suffix}.txt"), None, items, eol))
  summary = dict(dir=root, images=len(shots), splits=splits, files=files)
  if pairs is not None:
    summary["pairs"] = len(pairs)
  return summary


def _write_category_cloth(folder, eol):
  """list_category_cloth.txt, the same in Anno/ and Anno_fine/ (the released 50 names)."""
  return fmt.write_list(
      os.path.join(folder, "list_category_cloth.txt"),
      "category_name  category_type",
      [f"{name:<15}{ctype}" for name, ctype in schema.CATEGORIES],
      eol,
  )


def _write_category_files(anno, shots, rng, eol):
  cloth = _write_category_cloth(anno, eol)
  img = fmt.write_list(
      os.path.join(anno, "list_category_img.txt"),
      "image_name  category_label",
      [fmt.pad(s.name) + str(vocab.CATEGORY_LABEL[s.spec.category]) for s in shots],
      eol,
  )
  attr_cloth = fmt.write_list(
      os.path.join(anno, "list_attr_cloth.txt"),
      "attribute_name  attribute_type",
      [fmt.pad(name, 29) + str(t) for name, t in vocab.ATTRIBUTES],
      eol,
  )
  drawable = np.zeros(len(vocab.ATTRIBUTES), bool)
  for names in vocab.DRAWN_ATTRIBUTES.values():
    drawable[[vocab.ATTRIBUTE_INDEX[a] for a in names]] = True
  rows = []
  for shot in shots:
    values = np.full(len(vocab.ATTRIBUTES), -1)
    # Fillers are never drawn: negative, or now and then unknown.
    values[~drawable & (rng.random(len(values)) < 0.03)] = 0
    values[[vocab.ATTRIBUTE_INDEX[a] for a in shot.spec.attributes()]] = 1
    rows.append(fmt.pad(shot.name) + " ".join(f"{v:2d}" for v in values))
  attr_img = fmt.write_list(
      os.path.join(anno, "list_attr_img.txt"), "image_name  attribute_labels", rows, eol
  )
  return [cloth, img, attr_cloth, attr_img]


def _write_fine_files(fine_dir, shots, results, eol):
  """Anno_fine/ (2020): the 26 fine attributes of every image, split as in Eval/."""
  cloth = _write_category_cloth(fine_dir, eol)
  attr_cloth = fmt.write_list(
      os.path.join(fine_dir, "list_attr_cloth.txt"),
      "attribute_name   attribute_type",
      [f"{name:<21}{t}" for name, t in vocab.FINE_ATTRIBUTES],
      eol,
  )
  files = [cloth, attr_cloth]
  for split in FINE_SPLIT_FILES:
    rows = {k: [] for k in ("", "_cate", "_attr", "_bbox", "_landmarks")}
    for shot, (_, lm, _, bbox) in zip(shots, results):
      if shot.split != split:
        continue
      h, w = shot.size
      values = np.zeros(len(vocab.FINE_ATTRIBUTES), int)
      values[[vocab.FINE_ATTRIBUTE_INDEX[a] for a in shot.spec.fine_attributes()]] = 1
      rows[""].append(shot.name)
      rows["_cate"].append(str(vocab.CATEGORY_LABEL[shot.spec.category]))
      rows["_attr"].append(" ".join(map(str, values)))
      rows["_bbox"].append(" ".join(map(str, bbox)))
      rows["_landmarks"].append(fmt.landmark_pairs(lm, shot.spec.clothes_type, w, h))
    files += [
        fmt.write_lines(os.path.join(fine_dir, f"{split}{suffix}.txt"), lines, eol)
        for suffix, lines in rows.items()
    ]
  return files


def generate(
    out_dir,
    images=500,
    seed=0,
    benchmarks=None,
    crlf=False,
    workers=1,
    verbose=False,
    overwrite=False,
):
  """Writes the synthetic benchmarks under `out_dir`.

  Returns {benchmark key: {dir, images, splits (images per split; pairs for
  consumer2shop), files (paths written), [pairs]}}.
  """
  benchmarks = list(BENCHMARK_DIRS) if benchmarks is None else list(benchmarks)
  unknown = [b for b in benchmarks if b not in BENCHMARK_DIRS]
  if unknown:
    raise ValueError(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARK_DIRS)}")
  # One folder each: a config written with another benchmark's folder names that one.
  benchmarks = list(dict.fromkeys(WRITTEN_WITH.get(b, b) for b in benchmarks))
  if images < 1:
    raise ValueError(f"images must be at least 1, got {images}")
  for key in benchmarks:
    root = os.path.join(out_dir, BENCHMARK_DIRS[key])
    if os.path.isdir(root) and os.listdir(root):
      if not overwrite:
        raise FileExistsError(f"{root} exists and is not empty (pass overwrite=True / --overwrite)")
      shutil.rmtree(root)
  pool = None
  if workers > 1:
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn")
    )
  try:
    summary = {}
    for key in benchmarks:
      if verbose:
        print(f"{BENCHMARK_DIRS[key]}: {images} images", flush=True)
      summary[key] = _write_benchmark(
          key, out_dir, images, seed, pool, "\r\n" if crlf else "\n", verbose
      )
    return summary
  finally:
    if pool:
      pool.shutdown()
