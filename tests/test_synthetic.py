"""Synthetic DeepFashion: real file formats, exact landmarks, retrieval structure."""

import collections
import dataclasses
import hashlib
import io
import os
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from fashionnet_jax import schema, synthetic
from fashionnet_jax.synthetic import __main__ as synthetic_cli
from fashionnet_jax.synthetic import writer  # noqa: F401  (synthetic.writer.ZIPPED)
from fashionnet_jax.synthetic import garments
from fashionnet_jax.synthetic import render
from fashionnet_jax.synthetic import vocab

N = 30
DIRS = schema.BENCHMARK_DIRS
# sha256 of the released Anno/list_category_cloth.txt (DeepFashion, research-only: not here).
RELEASED_CATEGORY_CLOTH_SHA256 = "ec4a1be64f61c5f6ce2113df602b6eca3f27c14a67694cdad78d83654a15ab81"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  out = tmp_path_factory.mktemp("synthetic")
  summary = synthetic.generate(str(out), images=N, seed=3)
  return out, summary


def read_list(path, header=True):
  """(header, rows as token lists, raw rows) after checking the count line."""
  with open(path, "rb") as f:
    text = f.read().decode()
  assert "\r" not in text
  lines = text.split("\n")
  assert lines[-1] == "", f"{path}: no final newline"
  lines = lines[:-1]
  head = lines[1] if header else None
  raw = lines[2:] if header else lines[1:]
  assert int(lines[0]) == len(raw), f"{path}: count line {lines[0]} vs {len(raw)} rows"
  return head, [r.split() for r in raw], raw


def anno(out, key, name):
  sub = "Eval" if name == "list_eval_partition.txt" else "Anno"
  return os.path.join(out, DIRS[key], sub, name)


def image_sizes(out, key):
  """{name: (width, height)} read from the benchmark's zip or extracted folder."""
  img_dir = os.path.join(out, DIRS[key], "Img")
  sizes = {}
  if key in synthetic.writer.ZIPPED:
    with zipfile.ZipFile(os.path.join(img_dir, "img.zip")) as z:
      for name in z.namelist():
        sizes[name] = Image.open(io.BytesIO(z.read(name))).size
  else:
    for root, _, files in os.walk(os.path.join(img_dir, "img")):
      for f in files:
        path = os.path.join(root, f)
        sizes[os.path.relpath(path, img_dir)] = Image.open(path).size
  return sizes


def all_files(root):
  out = {}
  for d, _, files in os.walk(root):
    for f in files:
      p = os.path.join(d, f)
      with open(p, "rb") as fh:
        out[os.path.relpath(p, root)] = fh.read()
  return out


def test_categories_are_the_real_fifty(tree):
  assert len(schema.CATEGORIES) == 50
  assert [t for _, t in schema.CATEGORIES].count(3) == 14
  # The written list is the released file byte for byte.
  for sub in ("Anno", "Anno_fine"):
    with open(
        os.path.join(tree[0], DIRS["category_attribute"], sub, "list_category_cloth.txt"), "rb"
    ) as f:
      assert hashlib.sha256(f.read()).hexdigest() == RELEASED_CATEGORY_CLOTH_SHA256, sub


def test_same_seed_same_bytes_whatever_the_workers(tree, tmp_path):
  out, _ = tree
  again = synthetic.generate(str(tmp_path / "a"), images=N, seed=3, workers=2)
  assert all_files(out) == all_files(tmp_path / "a")
  assert again["inshop"]["splits"] == tree[1]["inshop"]["splits"]
  other = synthetic.generate(str(tmp_path / "b"), images=N, seed=4, benchmarks=["landmarks"])
  ref = all_files(os.path.join(out, DIRS["landmarks"]))
  assert (
      all_files(other["landmarks"]["dir"])["Anno/list_landmarks.txt"]
      != ref["Anno/list_landmarks.txt"]
  )


def test_layout_paths_and_image_sizes(tree):
  out, summary = tree
  patterns = {
      "category_attribute": r"img/[A-Za-z-]+(_[A-Za-z-]+)+/img_\d{8}\.jpg",
      "inshop": r"img/(MEN|WOMEN)/\w+/id_\d{8}/\d\d_(1_front|2_side|3_back|4_full|6_flat|7_additional)\.jpg",
      "consumer2shop": r"img/[A-Z]+/\w+/id_\d{8}/(comsumer|shop)_\d\d\.jpg",
      "landmarks": r"img/img_\d{8}\.jpg",
  }
  for key, pattern in patterns.items():
    assert summary[key]["images"] == N
    sizes = image_sizes(out, key)
    _, rows, _ = read_list(
        anno(
            out,
            key,
            "list_bbox%s.txt"
            % {"inshop": "_inshop", "consumer2shop": "_consumer2shop"}.get(key, ""),
        )
    )
    assert sorted(sizes) == sorted(r[0] for r in rows)
    for name, (w, h) in sizes.items():
      assert re.fullmatch(pattern, name), name
      if key == "inshop":
        assert (w, h) == (256, 256)
      else:
        assert max(w, h) == (512 if key == "landmarks" else 300), (name, w, h)
    for row in rows:  # bbox inside the image, zero-padded
      assert all(re.fullmatch(r"\d{3}", c) for c in row[-4:]), row
      x1, y1, x2, y2 = map(int, row[-4:])
      w, h = sizes[row[0]]
      assert 0 <= x1 < x2 < w and 0 <= y1 < y2 < h, row
  assert os.path.isfile(os.path.join(out, DIRS["category_attribute"], "Img", "img.zip"))
  assert os.path.isdir(os.path.join(out, DIRS["landmarks"], "Img", "img"))


def test_landmark_rows_in_the_real_formats(tree):
  out, _ = tree
  own = {1: 6, 2: 4, 3: 8}
  head, rows, raw = read_list(anno(out, "category_attribute", "list_landmarks.txt"))
  assert "variation_type" not in head
  assert {len(r) for r in rows} == {2 + 3 * own[int(r[1])] for r in rows}  # rows differ in length
  assert len({len(r) for r in rows}) > 1
  for r in rows:
    assert len(r) == 2 + 3 * own[int(r[1])]
  assert re.match(r"img/\S+ {2,}[123]  [012] \d{3} \d{3}  ", raw[0])
  head, rows, _ = read_list(anno(out, "landmarks", "list_landmarks.txt"))
  assert head.startswith("image_name  clothes_type  variation_type")
  for r in rows:
    assert len(r) == 3 + 24
    assert r[2] in "12345"
    n = own[int(r[1])]
    assert r[3 + 3 * n :] == ["0", "000", "000"] * (8 - n)
  for key in ("inshop", "consumer2shop"):
    _, rows, _ = read_list(anno(out, key, f"list_landmarks_{key}.txt"))
    for r in rows:
      assert len(r) == 3 + 3 * own[int(r[1])]


def test_truncated_landmarks_are_clipped_to_the_border(tree):
  out, _ = tree
  sizes = image_sizes(out, "landmarks")
  _, rows, _ = read_list(anno(out, "landmarks", "list_landmarks.txt"))
  vis = collections.Counter()
  for r in rows:
    w, h = sizes[r[0]]
    n = {1: 6, 2: 4, 3: 8}[int(r[1])]
    for i in range(n):
      v, x, y = int(r[3 + 3 * i]), int(r[4 + 3 * i]), int(r[5 + 3 * i])
      vis[v] += 1
      assert 0 <= x < w and 0 <= y < h
      if v == 2:
        assert x in (0, w - 1) or y in (0, h - 1), r
  assert vis[0] > vis[1] + vis[2]


def test_category_and_attribute_files(tree):
  out, _ = tree
  head, rows, raw = read_list(anno(out, "category_attribute", "list_category_cloth.txt"))
  assert head == "category_name  category_type" and raw[0] == "Anorak         1"
  _, labels, _ = read_list(anno(out, "category_attribute", "list_category_img.txt"))
  _, marks, _ = read_list(anno(out, "category_attribute", "list_landmarks.txt"))
  for (name, label), mark in zip(labels, marks):
    category, ctype = schema.CATEGORIES[int(label) - 1]
    assert category in garments.DRAWN_CATEGORIES and category not in vocab.EMPTY_CATEGORIES
    assert mark[0] == name and int(mark[1]) == ctype
  _, attrs, raw = read_list(anno(out, "category_attribute", "list_attr_cloth.txt"))
  assert len(attrs) == 1000 and {a[-1] for a in attrs} == set("12345")
  assert any(len(a) > 2 for a in attrs)  # names with spaces
  assert all(
      len(line) == 30 and line[28] == " "
      for line in raw
      if len(line.split()) == 2 and len(line.split()[0]) < 28
  )
  names = [" ".join(a[:-1]) for a in attrs]
  assert names == sorted(names)
  atype = np.array([int(a[-1]) for a in attrs])
  _, values, _ = read_list(anno(out, "category_attribute", "list_attr_img.txt"))
  v = np.array([[int(x) for x in r[1:]] for r in values])
  assert v.shape == (N, 1000) and set(np.unique(v)) == {-1, 0, 1}
  assert (v == -1).mean() > 0.9 and (v == 0).any()
  drawn = {
      t: [vocab.ATTRIBUTE_INDEX[a] for a in names] for t, names in vocab.DRAWN_ATTRIBUTES.items()
  }
  for row in v:  # exactly one texture, fabric and colour; positives only among drawn ones
    assert all((row[drawn[t]] == 1).sum() == 1 for t in (1, 2, 5))
    assert set(np.flatnonzero(row == 1)) <= set(sum(drawn.values(), []))
    assert set(atype[row == 1]) >= {1, 2, 3, 5}
  _, part, _ = read_list(anno(out, "category_attribute", "list_eval_partition.txt"))
  assert {p[1] for p in part} == {"train", "val", "test"}


def test_inshop_query_gallery_share_items_train_disjoint(tree):
  out, summary = tree
  _, part, _ = read_list(anno(out, "inshop", "list_eval_partition.txt"))
  _, items, _ = read_list(anno(out, "inshop", "list_item_inshop.txt"), header=False)
  items_by = collections.defaultdict(set)
  for name, item, status in part:
    items_by[status].add(item)
    assert f"/{item}/" in name
  assert items_by["query"] == items_by["gallery"] and items_by["query"]
  assert not items_by["train"] & items_by["query"]
  assert sorted(i[0] for i in items) == sorted(set().union(*items_by.values()))
  assert summary["inshop"]["splits"]["query"] == sum(p[2] == "query" for p in part)


def test_consumer2shop_pairs(tree):
  out, summary = tree
  _, pairs, _ = read_list(anno(out, "consumer2shop", "list_eval_partition.txt"))
  _, boxes, _ = read_list(anno(out, "consumer2shop", "list_bbox_consumer2shop.txt"))
  source = {b[0]: (int(b[1]), int(b[2])) for b in boxes}
  shop_uses = collections.Counter()
  split_of = {}
  for consumer, shop, item, status in pairs:
    assert "/comsumer_" in consumer and "/shop_" in shop
    assert f"/{item}/" in consumer and f"/{item}/" in shop
    assert source[consumer][1] == 2 and source[shop][1] == 1
    assert source[consumer][0] == source[shop][0]  # same item, same clothes type
    assert split_of.setdefault(item, status) == status
    shop_uses[shop] += 1
  assert max(shop_uses.values()) >= 2
  assert set(split_of.values()) == {"train", "val", "test"}
  assert summary["consumer2shop"]["pairs"] == len(pairs)


def test_crlf_option(tmp_path):
  lf = synthetic.generate(str(tmp_path / "lf"), images=4, benchmarks=["landmarks"])
  crlf = synthetic.generate(str(tmp_path / "crlf"), images=4, benchmarks=["landmarks"], crlf=True)
  for a, b in zip(lf["landmarks"]["files"][1:], crlf["landmarks"]["files"][1:]):
    text_lf, text_crlf = open(a, "rb").read(), open(b, "rb").read()
    assert text_crlf.count(b"\r\n") == text_lf.count(b"\n") > 0
    assert text_crlf.replace(b"\r\n", b"\n") == text_lf


def _renders(count, kind):
  for i in range(count):
    rng = np.random.default_rng(100 + i)
    spec = garments.random_spec(rng, garments.DRAWN_CATEGORIES[i % len(garments.DRAWN_CATEGORIES)])
    scene = render.random_scene(rng, kind)
    size = (96, 80) if i % 2 else (80, 96)
    yield spec, scene, size, render.render(spec, size, i, scene, markers=True), i


def test_landmarks_are_on_the_drawn_garment_with_visibility():
  seen = collections.Counter()
  for spec, scene, size, r, seed in _renders(40, "consumer"):
    plain = render.render(spec, size, seed, scene)
    np.testing.assert_array_equal(plain.landmarks, r.landmarks)
    np.testing.assert_array_equal(plain.visibility, r.visibility)
    h, w = size
    for slot in range(8):
      v = r.visibility[slot]
      seen[v] += 1
      x, y = np.round(r.landmarks[slot]).astype(int)
      if v == 3:
        assert slot not in schema.SLOTS_BY_CLOTHES_TYPE[spec.clothes_type]
        continue
      if v == 2:
        assert not (0 <= x < w and 0 <= y < h)
        continue
      # On the garment's outline: a garment pixel within one pixel.
      assert plain.mask[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].any()
      others = [
          s
          for s in range(slot + 1, 8)
          if r.visibility[s] < 2 and np.abs(np.round(r.landmarks[s]) - (x, y)).max() <= 2
      ]
      if not others:  # marker visible exactly when the landmark is not occluded
        is_marker = tuple(r.image[y, x]) == render.MARKER_COLOURS[slot]
        assert is_marker == (v == 0), (spec.category, slot, v)
  assert seen[0] and seen[1] and seen[2] and seen[3]


def test_markers_are_unique_colours():
  spec, scene, size, r, _ = next(_renders(1, "consumer"))
  for slot in np.flatnonzero(r.visibility == 0):
    hits = np.all(r.image == render.MARKER_COLOURS[slot], -1)
    ys, xs = np.nonzero(hits)
    assert np.abs(xs.mean() - r.landmarks[slot][0]) <= 1
    assert np.abs(ys.mean() - r.landmarks[slot][1]) <= 1


def test_left_is_the_image_left_and_a_flip_swaps_slots():
  for category in garments.DRAWN_CATEGORIES:
    spec = garments.default_spec(category)
    for rotation in (0.0, 20.0, -20.0):
      r = render.render(spec, 96, 0, render.Scene(rotation=rotation))
      lm, used = r.landmarks, r.visibility < 3
      for left in (0, 2, 4, 6):
        if used[left]:
          assert lm[left][0] < lm[left + 1][0], (category, rotation, left)
      # A horizontal flip, then the slot swap, keeps left on the left.
      flipped = np.stack([95 - lm[:, 0], lm[:, 1]], -1)[list(schema.FLIP_PERMUTATION)]
      for left in (0, 2, 4, 6):
        if used[left]:
          assert flipped[left][0] < flipped[left + 1][0]


def test_categories_differ_in_shape():
  masks = {
      c: render.render(garments.default_spec(c), 64, 0, render.Scene()).mask
      for c in garments.DRAWN_CATEGORIES
  }
  assert len(masks) >= 10
  names = list(masks)
  for i, a in enumerate(names):
    for b in names[i + 1 :]:
      iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
      assert iou < 0.9, (a, b, iou)


def test_same_item_same_look_across_views():
  spec = garments.random_spec(np.random.default_rng(0), "Dress")
  shop = render.render(spec, 64, 1, render.Scene(background="solid"))
  consumer = render.render(
      spec,
      64,
      2,
      dataclasses.replace(render.random_scene(np.random.default_rng(5), "consumer"), occluders=0),
  )
  # The garment's median colour is the item's, whatever the view.
  a = np.median(shop.image[shop.mask], 0)
  b = np.median(consumer.image[consumer.mask], 0)
  assert np.abs(a - b).max() < 40


def test_cli_errors_are_one_line(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    synthetic_cli.main(["--out", str(tmp_path), "--benchmarks", "bogus"])
  assert e.value.code == 2
  assert "--benchmarks: unknown ['bogus']" in capsys.readouterr().err
  argv = ["--out", str(tmp_path), "--images", "2", "--benchmarks", "landmarks", "--quiet"]
  argv += ["--workers", "1"]
  assert synthetic_cli.main(argv) == 0
  assert synthetic_cli.main(argv) == 2  # the same --out again: a user mistake
  err = capsys.readouterr().err.strip()
  assert "exists and is not empty" in err and len(err.splitlines()) == 1


def test_local_attributes_show_only_near_their_landmarks():
  """A trim changes pixels within a few pixels of its landmarks and nowhere else."""
  assert set(vocab.ATTRIBUTE_EXTENT.values()) == {"local", "global", "shape"}
  assert {n for n, e in vocab.ATTRIBUTE_EXTENT.items() if e == "local"} == set(vocab.TRIMS)
  assert vocab.attribute_extent("striped") == "global"
  assert (
      vocab.attribute_extent("long_sleeve") == "shape"
      and vocab.attribute_extent("abstract print") is None
  )
  for name in vocab.ATTRIBUTE_EXTENT:
    assert name in vocab.ATTRIBUTE_INDEX
  rng = np.random.default_rng(5)
  for category in ("Tee", "Jeans", "Dress"):
    spec = dataclasses.replace(garments.random_spec(rng, category), trims=())
    scene = render.Scene(scale=0.8)
    plain = render.render(spec, (160, 160), 1, scene)
    for trim in vocab.TRIMS:
      slots = [s for s in vocab.LOCAL_SLOTS[trim] if plain.visibility[s] != 3]
      if not slots:
        continue
      trimmed = render.render(dataclasses.replace(spec, trims=(trim,)), (160, 160), 1, scene)
      assert trim in dataclasses.replace(spec, trims=(trim,)).attributes()
      changed = np.argwhere(np.abs(trimmed.image.astype(int) - plain.image).sum(-1) > 30)
      assert len(changed) > 10, (category, trim)
      near = np.min([np.abs(changed[:, ::-1] - plain.landmarks[s]).max(1) for s in slots], 0)
      assert near.max() <= 12, (category, trim, near.max())  # of 160 px


def test_anno_fine_files_line_up_with_the_partition(tree):
  out, _ = tree
  fine_dir = os.path.join(out, DIRS["category_attribute"], "Anno_fine")
  _, names, _ = read_list(os.path.join(fine_dir, "list_attr_cloth.txt"))
  assert [(n, int(t)) for n, t in names] == list(vocab.FINE_ATTRIBUTES)
  _, partition, _ = read_list(anno(out, "category_attribute", "list_eval_partition.txt"))
  for split in ("train", "val", "test"):
    lines = {
        k: open(os.path.join(fine_dir, f"{split}{k}.txt")).read().splitlines()
        for k in ("", "_cate", "_attr", "_bbox", "_landmarks")
    }
    assert lines[""] == [n for n, s in partition if s == split]
    assert {len(v) for v in lines.values()} == {len(lines[""])}
    assert all(len(r.split()) == 26 and set(r.split()) <= {"0", "1"} for r in lines["_attr"])
    assert all(len(r.split()) == 16 for r in lines["_landmarks"])
