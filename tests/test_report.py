"""write_report: JSON keys, the Markdown table beside the paper, PNG plots."""

import json

import numpy as np
from PIL import Image

from fashionnet_jax.evaluation import metrics as evaluate
from fashionnet_jax.evaluation import report


def _metrics(seed=0):
  """Flat metrics from the real metric functions on small random outputs."""
  rng = np.random.default_rng(seed)
  n = 40
  labels = rng.integers(0, 50, size=n)
  logits = rng.normal(size=(n, 50)) + 3 * np.eye(50)[labels]
  attr_labels = rng.choice([-1, 0, 1], p=[0.8, 0.1, 0.1], size=(n, 1000))
  attr_scores = rng.normal(size=(n, 1000)) + attr_labels
  attr_types = np.repeat([1, 2, 3, 4, 5], 200)
  bbox = np.concatenate([rng.uniform(0.0, 0.3, (n, 2)), rng.uniform(0.7, 1.0, (n, 2))], 1)
  size = bbox[:, None, 2:] - bbox[:, None, :2]
  true = bbox[:, None, :2] + rng.uniform(0.1, 0.9, (n, 8, 2)) * size
  pred = true + rng.normal(scale=0.05, size=true.shape)
  visibility = rng.integers(0, 2, size=(n, 8))
  visibility[:, 7] = 3  # right hem never visible -> NaN
  items = rng.integers(0, 10, size=n)
  gallery = rng.normal(size=(10, 16))[items] + rng.normal(scale=0.5, size=(n, 16))
  queries = gallery + rng.normal(size=(n, 16))  # same item, another view
  metrics = {}
  metrics.update(evaluate.category_metrics(logits, labels))
  metrics.update(evaluate.attribute_metrics(attr_scores, attr_labels, attr_types))
  metrics.update(evaluate.landmark_metrics(pred, true, visibility, bbox))
  metrics["landmark_ne_image"] = evaluate.landmark_normalized_error(pred, true, visibility)[1]
  metrics.update(evaluate.retrieval_metrics(queries, items, gallery, items))
  return metrics


def test_write_report_json_markdown_and_plots(tmp_path):
  metrics = _metrics()
  written = report.write_report(
      metrics, tmp_path, step=1200, split="test", dataset="deepfashion/category_attribute:1.0.0"
  )
  assert written["json"] == tmp_path / "eval" / "1200.json"

  record = json.loads((tmp_path / "eval" / "1200.json").read_text())
  expected_keys = {
      "category_top1",
      "category_top3",
      "category_top5",
      "attribute_top3_recall",
      "attribute_top5_recall",
      *(
          f"attribute_top{k}_recall_{t}"
          for k in (3, 5)
          for t in ("texture", "fabric", "shape", "part", "style")
      ),
      "landmark_ne",
      *(f"landmark_ne_{n}" for n in evaluate.LANDMARK_NAMES),
      *(f"retrieval_top{k}" for k in (1, 5, 10, 20, 30, 40, 50)),
      "step",
      "split",
      "dataset",
  }
  assert expected_keys <= set(record)
  assert record["step"] == 1200 and record["split"] == "test"
  assert record["landmark_ne_right_hem"] is None  # NaN -> null, strict JSON
  assert record["category_top3"] == metrics["category_top3"]

  md = (tmp_path / "eval" / "1200.md").read_text()
  top3 = 100 * metrics["category_top3"]
  assert f"| category_top3 | {top3:.2f} | 82.58 | [cvpr16] |" in md
  assert "| attribute_top5_recall_style |" in md and "| 73.16 | [cvpr16] |" in md
  # Both protocols, named apart; the paper's numbers only beside the paper's protocol.
  assert "the paper's (all attribute scores ranked once" in md
  style = [
      line
      for line in md.splitlines()
      if line.startswith("| attribute_top5_recall_style_within_type |")
  ]
  assert len(style) == 1 and style[0].endswith("|  |  |")
  assert f"| landmark_ne | {metrics['landmark_ne']:.4f} | 0.0872 | [afgn] |" in md
  assert "| landmark_ne_right_hem | n/a | 0.0823 | [afgn] |" in md
  # The whole-image NE has no published counterpart; the frames are named above the table.
  assert f"| landmark_ne_image | {metrics['landmark_ne_image']:.4f} |  |  |" in md
  assert "x / bbox width, y / bbox height" in md

  for kind in ("retrieval_plot", "landmark_ne_plot", "landmark_detected_plot"):
    image = np.asarray(Image.open(written[kind]).convert("L"))
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 5  # something was drawn


def test_paper_column_follows_the_dataset(tmp_path):
  metrics = {"retrieval_top1": 0.5, "retrieval_top20": 0.8, "landmark_ne": 0.05}
  written = report.write_report(metrics, tmp_path, 7, "query", "inshop")
  md = written["markdown"].read_text()
  assert "| retrieval_top20 | 0.8000 | 0.764 | [cvpr16_retrieval] |" in md
  assert "| landmark_ne | 0.0500 |  |  |" in md  # no NE reported for In-shop
  assert set(written) == {"json", "markdown", "retrieval_plot"}  # no landmark plots

  written = report.write_report(
      {
          "landmark_ne": 0.05,
          "landmark_detected_bbox224_10px": 0.5,
          "landmark_detected_bbox224_20px": 0.7,
      },
      tmp_path,
      8,
      "test",
      "landmarks",
  )
  assert "| landmark_ne | 0.0500 | 0.0859 | [afgn] |" in written["markdown"].read_text()
  assert "landmark_detected_plot" in written

  md = report.write_report({"retrieval_top20": 0.2}, tmp_path, 9, "test", "consumer2shop")[
      "markdown"
  ].read_text()
  assert "| retrieval_top20 | 0.2000 | 0.188 | [cvpr16_retrieval] |" in md


def test_every_published_number_has_its_source(tmp_path):
  """Paper, table and protocol beside each number; NE credited to AFGN's re-evaluation."""
  for benchmark, numbers in report.PAPER_FASHIONNET.items():
    for name in numbers:
      assert report.paper_source(benchmark, name) in report.SOURCES, (benchmark, name)
  assert report.paper_source("landmarks", "landmark_ne") == "afgn"
  assert report.paper_source("landmarks", "landmark_ne_image") is None
  afgn = report.SOURCES["afgn"]
  assert "Wang et al., AFGN" in afgn and "CVPR 2018" in afgn and "bbox" in afgn
  assert "not checked here" in afgn  # what could not be confirmed says so
  md = report.write_report({"landmark_ne": 0.05}, tmp_path, 1, "test", "landmarks")[
      "markdown"
  ].read_text()
  assert "- [afgn] FashionNet as re-evaluated by Wang et al." in md
  assert "[cvpr16]" not in md  # only the sources the table uses
  table = report.reproduction_table(
      {"landmarks": {"landmark_ne": 0.05}, "inshop": {"retrieval_top20": 0.7}}
  )
  assert "| landmarks | landmark_ne | 0.0500 | 0.0859 | [afgn] |" in table
  assert "| inshop | retrieval_top20 | 0.7000 | 0.764 | [cvpr16_retrieval] |" in table
  assert "- [afgn] " in table and "- [cvpr16_retrieval] " in table


def test_protocol_goes_into_the_json(tmp_path):
  protocol = {"crop": "ground-truth bbox + 0.1 per side", "ne_frame": "ground-truth bbox"}
  written = report.write_report(
      {"landmark_ne": 0.05}, tmp_path, 2, "test", "landmarks", extra={"protocol": protocol}
  )
  assert json.loads(written["json"].read_text())["protocol"] == protocol
  md = written["markdown"].read_text()
  assert "protocol: crop: ground-truth bbox + 0.1 per side; ne_frame: ground-truth bbox" in md
