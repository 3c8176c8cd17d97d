"""The `deepfashion` TFDS builder: every config end to end, bad input, skips."""

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

import deepfashion_tiny as tiny
from fashionnet_jax.data import records
from fashionnet_jax.data import tfds_build
from fashionnet_jax.data.annotations import DeepFashionFormatError

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = list(records.BENCHMARK_DIRS)
FINE = "category_attribute_fine"
STATUS = records.STATUS_TO_SPLIT


def build(tmp_path, config, **kw):
  return tfds_build.build(config, tmp_path / "manual", tmp_path / "data", **kw)


def read_back(tmp_path, config):
  source = tfds.data_source(f"deepfashion/{config}", data_dir=tmp_path / "data")
  return {split: [source[split][i] for i in range(len(source[split]))] for split in source}


def expected_splits(config, truth):
  if config != "consumer2shop":
    return {n: {STATUS[t["status"]]} for n, t in truth.items()}
  # Only paired images count: odd rows wrote the (consumer, shop) pairs.
  paired = {n.rsplit("/", 2)[1] for n in truth if "shop_01" in n}
  return {n: {STATUS[t["status"]]} for n, t in truth.items() if n.rsplit("/", 2)[1] in paired}


@pytest.mark.parametrize(
    "config,layout",
    [
        ("category_attribute", dict(crlf=True)),
        ("inshop", dict(as_zip=False, anno="Anno_coarse")),
        ("consumer2shop", dict(pad=True)),
        ("landmarks", dict()),
    ],
)
def test_build_and_read_back(tmp_path, config, layout):
  truth = tiny.write_benchmark(tmp_path / "manual", config, 13, **layout)
  builder = build(tmp_path, config)
  got = read_back(tmp_path, config)
  splits = expected_splits(config, truth)
  assert set(got) == set(records.SPLITS[config])
  for split, examples in got.items():
    names = sorted(e["image/filename"].decode() for e in examples)
    assert names == sorted(n for n, s in splits.items() if split in s)
  if config == "category_attribute":
    assert builder.info.features["category"].names[:3] == ["Anorak", "Blazer", "Blouse"]
    assert builder.info.metadata["attribute_names"][2] == "attr 2 print"
  for ex in (e for examples in got.values() for e in examples):
    t = truth[ex["image/filename"].decode()]
    w, h = t["width"], t["height"]
    assert ex["image"].shape == (h, w, 3)
    x1, y1, x2, y2 = t["bbox"]
    np.testing.assert_allclose(ex["bbox"], [y1 / h, x1 / w, y2 / h, x2 / w], rtol=1e-6)
    np.testing.assert_allclose(ex["landmarks"], t["xy"] / [w, h], rtol=1e-6)
    np.testing.assert_array_equal(ex["landmark_visibility"], t["vis"])
    assert ex["clothes_type"] == t["clothes_type"] - 1
    if config == "category_attribute":
      assert ex["category"] == t["category"] - 1
      np.testing.assert_array_equal(ex["attributes"], t["attributes"])
    else:
      assert ex["variation_type"] == t["variation_type"]
    if config in ("inshop", "consumer2shop"):
      assert ex["item_id"].decode() == t["item_id"]
    if config == "inshop":
      assert ex["pose_type"] == t["pose_type"]
    if config == "consumer2shop":
      assert ex["source"] == t["source"]


def _replace_line(path, lineno, new):
  lines = path.read_bytes().split(b"\n")
  lines[lineno - 1] = new.encode()
  path.write_bytes(b"\n".join(lines))


def _anno(tmp_path, config, name):
  return tmp_path / "manual" / records.BENCHMARK_DIRS[config] / name


@pytest.mark.parametrize(
    "config,file,edit,match",
    [
        (
            "landmarks",
            "Anno/list_bbox.txt",
            lambda p: _replace_line(p, 4, "img/img_00000001.jpg  001 002 003"),
            r"list_bbox.txt:4: expected 5 columns",
        ),
        (
            "landmarks",
            "Anno/list_landmarks.txt",
            lambda p: _replace_line(p, 1, "99"),
            r"list_landmarks.txt:1: count line says 99 records but the file has 6",
        ),
        (
            "landmarks",
            "Eval/list_eval_partition.txt",
            lambda p: _replace_line(p, 5, "img/img_00000077.jpg  train"),
            r"list_bbox.txt:5 and .*list_eval_partition.txt:5 disagree on the image:"
            r" img/img_00000002.jpg vs img/img_00000077.jpg",
        ),
        (
            "landmarks",
            "Eval/list_eval_partition.txt",
            lambda p: p.write_bytes(
                b"\n".join(p.read_bytes().split(b"\n")[:-2]).replace(b"6\n", b"5\n", 1) + b"\n"
            ),
            r"list_bbox.txt:8: image img/img_00000005.jpg has no row in"
            r" .*list_eval_partition.txt, which ended earlier",
        ),
        (
            "category_attribute",
            "Anno/list_attr_img.txt",
            lambda p: _replace_line(p, 6, _first_line(p, 6) + " 1"),
            r"list_attr_img.txt:6: expected 1000 attribute labels, got 1001",
        ),
        (
            "inshop",
            "Eval/list_eval_partition.txt",
            lambda p: _replace_line(p, 1, "5")
            or p.write_bytes(b"\n".join(p.read_bytes().split(b"\n")[:-2]) + b"\n"),
            r"list_bbox_inshop.txt:8: image img/WOMEN/.* is not in .*partition.txt",
        ),
        (
            "category_attribute",
            "Anno/list_category_cloth.txt",
            lambda p: _replace_line(p, 1, "49")
            or p.write_bytes(b"\n".join(p.read_bytes().split(b"\n")[:-2]) + b"\n"),
            r"list_category_cloth.txt: 49 categories listed, the builder expects 50",
        ),
    ],
)
def test_bad_input_fails_naming_file_and_line(tmp_path, config, file, edit, match):
  tiny.write_benchmark(tmp_path / "manual", config, 6)
  edit(_anno(tmp_path, config, file))
  with pytest.raises(DeepFashionFormatError, match=match) as info:
    build(tmp_path, config)
  assert "\n" not in str(info.value)


def test_benchmark_without_its_annotation_folder_names_both_spellings(tmp_path):
  tiny.write_benchmark(tmp_path / "manual", "landmarks", 6)
  shutil.rmtree(_anno(tmp_path, "landmarks", "Anno"))
  with pytest.raises(
      DeepFashionFormatError,
      match=r"Landmark Detection Benchmark: no Anno/ \(or Anno_coarse/, as the "
      r"2020 re-release names it\)",
  ):
    build(tmp_path, "landmarks")


def _first_line(path, lineno):
  return path.read_bytes().split(b"\n")[lineno - 1].decode()


def _break_images(tmp_path, config):
  """Drops img_00000001 from the zip and truncates img_00000004."""
  zip_path = _anno(tmp_path, config, "Img/img.zip")
  with zipfile.ZipFile(zip_path) as z:
    members = {n: z.read(n) for n in z.namelist()}
  del members["img/img_00000001.jpg"]
  members["img/img_00000004.jpg"] = members["img/img_00000004.jpg"][:100]
  with zipfile.ZipFile(zip_path, "w") as z:
    for n, data in members.items():
      z.writestr(n, data)


def test_missing_image_fails(tmp_path):
  tiny.write_benchmark(tmp_path / "manual", "landmarks", 6)
  _break_images(tmp_path, "landmarks")
  with pytest.raises(
      DeepFashionFormatError,
      match=r"list_bbox.txt:4: image img/img_00000001.jpg not" r" found in .*img.zip",
  ):
    build(tmp_path, "landmarks")


def test_skip_bad_examples_reports_them(tmp_path):
  truth = tiny.write_benchmark(tmp_path / "manual", "landmarks", 9)
  _break_images(tmp_path, "landmarks")
  _replace_line(
      _anno(tmp_path, "landmarks", "Anno/list_landmarks.txt"),
      9,
      "img/img_00000006.jpg  1  1  0 001 002",
  )
  builder = build(tmp_path, "landmarks", skip_bad_examples=True)
  got = read_back(tmp_path, "landmarks")
  assert sum(len(v) for v in got.values()) == len(truth) - 3
  listed = (builder.data_path / "skipped_examples.tsv").read_text()
  lines = sorted(listed.splitlines(), key=lambda l: l.split("\t")[1])
  assert len(lines) == 3
  assert lines[0].startswith("validation\t")  # Row 1 was a `val` image.
  assert "list_bbox.txt:4: image img/img_00000001.jpg not found" in lines[0]
  assert "list_bbox.txt:7: image img/img_00000004.jpg" in lines[1]
  assert "cannot be decoded" in lines[1]
  assert "list_landmarks.txt:9: clothes_type 1 needs 6" in lines[2]


def test_inshop_image_of_another_size_than_released_is_refused(tmp_path):
  """In-shop's labels are pixels of the 256×256 img/ images: an img_highres/ photo
  unpacked as img/ is refused naming the file, not read with mis-scaled labels."""
  truth = tiny.write_benchmark(tmp_path / "manual", "inshop", 6, as_zip=False)
  name = sorted(truth)[3]
  (_anno(tmp_path, "inshop", "Img") / name).write_bytes(tiny.jpeg(500, 750, 1))
  with pytest.raises(
      DeepFashionFormatError,
      match=rf"list_bbox_inshop.txt:\d+: image {name} in .* is 500x750, but the"
      r" labels are pixels of the released 256x256 img/ images",
  ) as info:
    build(tmp_path, "inshop", skip_bad_examples=True)  # not a bad example: the folder is wrong
  assert "\n" not in str(info.value)


def test_registered_name_takes_builder_kwargs(tmp_path):
  tiny.write_benchmark(tmp_path / "manual", "landmarks", 9)
  _break_images(tmp_path, "landmarks")
  tfds_build.load_builder_module()
  builder = tfds.builder(
      "deepfashion/landmarks",
      data_dir=tmp_path / "data",
      skip_bad_examples=True,
      file_format="array_record",
  )
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / "manual")
  )
  assert len(builder.skipped) == 2
  assert sum(s.num_examples for s in builder.info.splits.values()) == 7


def test_beam_path_gives_the_same_examples(tmp_path):
  beam = pytest.importorskip("apache_beam")
  truth = tiny.write_benchmark(tmp_path / "manual", "consumer2shop", 11)
  builder = tfds_build.builder_cls()(
      config="consumer2shop",
      data_dir=tmp_path / "data",
      file_format="array_record",
      beam_chunk_rows=4,
  )
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=tmp_path / "manual",
          beam_options=beam.options.pipeline_options.PipelineOptions(
              ["--runner=DirectRunner", "--direct_num_workers=1"]
          ),
      )
  )
  got = read_back(tmp_path, "consumer2shop")
  splits = expected_splits("consumer2shop", truth)
  for split, examples in got.items():
    names = sorted(e["image/filename"].decode() for e in examples)
    assert names == sorted(n for n, s in splits.items() if split in s)
    for e in examples:
      assert e["item_id"].decode() == truth[e["image/filename"].decode()]["item_id"]


# ------------------------------------------------- Anno_fine (2020 re-release)


@pytest.mark.parametrize(
    "layout",
    [
        dict(crlf=True),
        dict(triples=True),
        dict(released_list="Anno_fine"),
        dict(released_list="Anno_coarse", crlf=True),
    ],
)
def test_fine_build_and_read_back(tmp_path, layout):
  """`x y` pairs take their visibility from the released per-image list where it
  lists the same position; without one they are occluded (unknown), never visible."""
  truth = tiny.write_fine(tmp_path / "manual", 8, **layout)
  builder = build(tmp_path, FINE)
  got = read_back(tmp_path, FINE)
  assert builder.info.metadata["attribute_types"] == [1 + k % 6 for k in range(26)]
  assert builder.info.features["attributes"].shape == (26,)
  for split, examples in got.items():
    by_name = {t["name"]: t for t in truth[split]}
    assert sorted(e["image/filename"].decode() for e in examples) == sorted(by_name)
    for ex in examples:
      t = by_name[ex["image/filename"].decode()]
      w, h = t["width"], t["height"]
      x1, y1, x2, y2 = t["bbox"]
      np.testing.assert_allclose(ex["bbox"], [y1 / h, x1 / w, y2 / h, x2 / w], rtol=1e-6)
      np.testing.assert_allclose(ex["landmarks"], t["xy"] / [w, h], rtol=1e-6)
      np.testing.assert_array_equal(ex["landmark_visibility"], t["vis"])
      assert ex["clothes_type"] == t["clothes_type"] - 1
      assert ex["category"] == t["category"] - 1
      np.testing.assert_array_equal(ex["attributes"], t["attributes"])
  assert {k: len(v) for k, v in got.items()} == {"train": 3, "validation": 3, "test": 2}


@pytest.mark.parametrize(
    "file,lineno,new,match",
    [
        ("val_attr.txt", 2, "1 0 1", r"val_attr.txt:2: expected 26 attribute labels, got 3"),
        (
            "train_attr.txt",
            1,
            " ".join(["2"] * 26),
            r"train_attr.txt:1: attribute labels must be 1 or 0, got '2'",
        ),
        (
            "test_landmarks.txt",
            1,
            "1 2 3",
            r"test_landmarks.txt:1: clothes_type 3 .* needs 8 `x y` pairs, got 3 values",
        ),
        ("train_cate.txt", 3, "51", r"train_cate.txt:3: category_label must be one of"),
        ("train_bbox.txt", 2, "9 9 1 1", r"train_bbox.txt:2: bbox has x_1 > x_2"),
    ],
)
def test_fine_bad_line_fails_naming_file_and_line(tmp_path, file, lineno, new, match):
  from fashionnet_jax.data import fine

  tiny.write_fine(tmp_path / "manual", 8)
  _replace_line(_anno(tmp_path, FINE, "Anno_fine/" + file), lineno, new)
  bench = fine.FineBenchmark(tmp_path / "manual")
  split = {"train": "train", "val": "validation", "test": "test"}[file.split("_")[0]]
  with pytest.raises(DeepFashionFormatError, match=match) as info:
    list(bench.examples(split))
  assert "\n" not in str(info.value)


def test_fine_build_fails_on_a_short_file_and_skips_bad_lines(tmp_path):
  tiny.write_fine(tmp_path / "manual", 8)
  path = _anno(tmp_path, FINE, "Anno_fine/train_bbox.txt")
  path.write_bytes(b"".join(path.read_bytes().splitlines(True)[:2]))
  with pytest.raises(
      DeepFashionFormatError,
      match=r"train.txt:3: no matching line in .*train_bbox.txt, which" r" ended earlier",
  ) as info:
    build(tmp_path, FINE)
  assert "\n" not in str(info.value)
  tiny.write_fine(tmp_path / "manual", 8)
  _replace_line(_anno(tmp_path, FINE, "Anno_fine/train_landmarks.txt"), 2, "1 2 x 4")
  builder = build(tmp_path, FINE, skip_bad_examples=True)
  assert builder.info.splits["train"].num_examples == 2
  assert "train_landmarks.txt:2:" in (builder.data_path / "skipped_examples.tsv").read_text()


def test_tfds_build_cli_from_the_datasets_folder(tmp_path):
  tiny.write_benchmark(tmp_path / "manual", "landmarks", 9)
  _break_images(tmp_path, "landmarks")
  env = dict(os.environ, DEEPFASHION_SKIP_BAD_EXAMPLES="1")
  cmd = [
      sys.executable,
      "-m",
      "tensorflow_datasets.scripts.cli.main",
      "build",
      "deepfashion",
      f"--manual_dir={tmp_path / 'manual'}",
      f"--data_dir={tmp_path / 'data'}",
      "--config=landmarks",
      "--file_format=array_record",
  ]
  run = subprocess.run(
      cmd, cwd=REPO / "datasets", env=env, capture_output=True, text=True, timeout=120
  )
  assert run.returncode == 0, run.stderr[-2000:]
  got = read_back(tmp_path, "landmarks")
  assert sum(len(v) for v in got.values()) == 7
  skipped = tmp_path / "data/deepfashion/landmarks/1.0.0/skipped_examples.tsv"
  assert len(skipped.read_text().splitlines()) == 2


# ---------------------------------------------------- synthetic DeepFashion


def _parse_truth(root, config):
  """The synthetic annotation files, read with plain `split()`."""
  bench = pathlib.Path(root) / records.BENCHMARK_DIRS[config]

  def table(name):
    lines = (bench / name).read_text().splitlines()
    return {l.split()[0]: l.split() for l in lines[2:] if l.strip()}

  files = {
      "category_attribute": ("Anno/list_bbox.txt", "Anno/list_landmarks.txt"),
      "landmarks": ("Anno/list_bbox.txt", "Anno/list_landmarks.txt"),
      "inshop": ("Anno/list_bbox_inshop.txt", "Anno/list_landmarks_inshop.txt"),
      "consumer2shop": (
          "Anno/list_bbox_consumer2shop.txt",
          "Anno/list_landmarks_consumer2shop.txt",
      ),
  }[config]
  bbox, marks = table(files[0]), table(files[1])
  part_lines = (bench / "Eval/list_eval_partition.txt").read_text().splitlines()
  splits, items = {}, {}
  for line in part_lines[2:]:
    t = line.split()
    if config == "consumer2shop":
      for name in t[:2]:
        splits.setdefault(name, set()).add(STATUS[t[3]])
        items[name] = t[2]
    else:
      splits[t[0]] = {STATUS[t[-1]]}
      items[t[0]] = t[1] if config == "inshop" else None
  return bench, bbox, marks, splits, items


def test_builds_every_config_from_synthetic_deepfashion(tmp_path):
  synthetic = pytest.importorskip("fashionnet_jax.synthetic")
  synthetic.generate(tmp_path / "manual", images=40, seed=3)
  for config in CONFIGS:
    if config == FINE:  # Anno_fine/: checked against the coarse build below
      continue
    build(tmp_path, config)
    got = read_back(tmp_path, config)
    _, bbox, marks, splits, items = _parse_truth(tmp_path / "manual", config)
    for split in records.SPLITS[config]:
      names = sorted(e["image/filename"].decode() for e in got[split])
      assert names == sorted(n for n, s in splits.items() if split in s), (config, split)
    head = 2 if config == "category_attribute" else 3
    slots = {1: (0, 1, 2, 3, 6, 7), 2: (4, 5, 6, 7), 3: tuple(range(8))}
    for ex in (e for v in got.values() for e in v):
      name = ex["image/filename"].decode()
      h, w = ex["image"].shape[:2]
      x1, y1, x2, y2 = map(int, bbox[name][-4:])
      np.testing.assert_allclose(
          ex["bbox"], np.clip([y1 / h, x1 / w, y2 / h, x2 / w], 0, 1), rtol=1e-6
      )
      row = marks[name]
      ctype = int(row[1])
      assert ex["clothes_type"] == ctype - 1
      triples = np.array(row[head:], int).reshape(-1, 3)
      for k, slot in enumerate(slots[ctype]):
        assert ex["landmark_visibility"][slot] == triples[k, 0]
        np.testing.assert_allclose(ex["landmarks"][slot], triples[k, 1:] / [w, h], rtol=1e-6)
      unused = [s for s in range(8) if s not in slots[ctype]]
      assert (ex["landmark_visibility"][unused] == 3).all()
      if items.get(name):
        assert ex["item_id"].decode() == items[name]
      # Left/right order: a visible left collar/hem lies left of the right.
      vis = ex["landmark_visibility"]
      for left, right in ((0, 1), (6, 7)):
        if vis[left] == 0 and vis[right] == 0:
          assert ex["landmarks"][left, 0] <= ex["landmarks"][right, 0] + 0.25
  # Anno_fine: the same images, splits, boxes and points; 26 attributes, one per type.
  build(tmp_path, FINE)
  coarse = {
      e["image/filename"]: (s, e)
      for s, v in read_back(tmp_path, "category_attribute").items()
      for e in v
  }
  for split, examples in read_back(tmp_path, FINE).items():
    assert len(examples) == sum(s == split for s, _ in coarse.values())
    for ex in examples:
      s, twin = coarse[ex["image/filename"]]
      assert s == split and ex["category"] == twin["category"]
      np.testing.assert_array_equal(ex["bbox"], twin["bbox"])
      used = twin["landmark_visibility"] != 3
      np.testing.assert_array_equal(ex["landmark_visibility"] != 3, used)
      # The pairs' visibility, read back from the coarse list_landmarks.txt beside Anno_fine/.
      np.testing.assert_array_equal(ex["landmark_visibility"], twin["landmark_visibility"])
      np.testing.assert_allclose(ex["landmarks"], twin["landmarks"], atol=1e-6)
      assert ex["attributes"].shape == (26,) and set(ex["attributes"]) <= {1, -1}
      assert 4 <= (ex["attributes"] == 1).sum() <= 6
