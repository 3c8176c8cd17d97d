"""Evaluation reports: JSON, a Markdown table beside the paper, PNG plots.

`write_report(metrics, workdir, step, split, dataset)` takes the flat metric
dict of `evaluation.metrics.*_metrics` (fractions in [0, 1]) and writes, under
`workdir/eval/` (validation during model selection: `workdir/eval/validation/`;
any etils.epath path, gs:// included):
- `<step>.json`: the metrics plus step, split and dataset; NaN (a landmark
  never visible, an attribute type without positives) is written as null;
- `<step>.md`: one row per metric, ours next to FashionNet's published number
  in the paper's units (category and attributes in %, retrieval as a
  fraction, NE in normalised units);
- `<step>_retrieval.png`, `<step>_landmark_ne.png`,
  `<step>_landmark_detected.png`: whichever the metrics allow.
"""
import io
import json
import math
import re

from etils import epath
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fashionnet_jax.schema import FINE_ATTRIBUTE_TYPE_NAMES

# FashionNet (Liu et al., CVPR 2016), by builder config; in the paper's units.
_ATTRIBUTES = {"texture": (37.46, 49.52), "fabric": (39.30, 49.84),
               "shape": (39.47, 48.59), "part": (44.13, 54.02),
               "style": (66.43, 73.16), "": (45.52, 54.61)}
PAPER_FASHIONNET = {
    "category_attribute": {
        "category_top3": 82.58, "category_top5": 90.17,
        **{f"attribute_top3_recall{'_' + t if t else ''}": v[0]
           for t, v in _ATTRIBUTES.items()},
        **{f"attribute_top5_recall{'_' + t if t else ''}": v[1]
           for t, v in _ATTRIBUTES.items()},
        "landmark_ne": 0.0872,
    },
    "inshop": {"retrieval_top20": 0.764},
    "consumer2shop": {"retrieval_top20": 0.188},
    "landmarks": {"landmark_ne": 0.0859},
}
_PERCENT_PREFIXES = ("category_", "attribute_", "landmark_detected_")
_PROTOCOLS = (
    "Attribute recall per type, two protocols that are not comparable: "
    "`attribute_top{k}_recall_<type>` is the paper's (all attribute scores ranked once, "
    "recall over that type's positives), the one the paper column matches; "
    "`..._<type>_within_type` ranks only the type's attributes, as later papers "
    "(AFGN; Liu & Lu, ECCV 2018 workshop) report it.")


def _dataset_key(dataset: str) -> str:
  """'deepfashion/inshop:1.0.0' -> 'inshop'."""
  return dataset.split("/")[-1].split(":")[0]


def _in_paper_units(name, value):
  if value is None or math.isnan(value):
    return "n/a"
  if name.startswith(_PERCENT_PREFIXES):
    return f"{100 * value:.2f}"
  return f"{value:.4f}"


def _json_value(value):
  value = float(value)
  return None if math.isnan(value) else value


def markdown_table(metrics, step, split, dataset) -> str:
  paper = PAPER_FASHIONNET.get(_dataset_key(dataset), {})
  lines = [f"# Evaluation: {dataset}, split {split}, step {step}", "",
           "Category, attributes and detected percentage in %; retrieval top-k "
           "accuracy as a fraction; NE in normalised units. Paper = FashionNet "
           "(Liu et al., CVPR 2016).", ""]
  if any(name.endswith("_within_type") for name in metrics):
    lines += [_PROTOCOLS, ""]
  lines += ["| metric | ours | FashionNet (paper) |", "|---|---:|---:|"]
  for name, value in metrics.items():
    theirs = paper.get(name)
    if theirs is not None:  # already in the paper's units
      theirs = f"{theirs:.2f}" if name.startswith(_PERCENT_PREFIXES) else f"{theirs:g}"
    lines.append(f"| {name} | {_in_paper_units(name, float(value))} | {theirs or ''} |")
  return "\n".join(lines + _cascade_table(metrics)) + "\n"


def cascade_levels(metrics) -> dict[str, list]:
  """{level: sorted (k, top-k)} of HDC's per-level keys retrieval_<level>_top<k>."""
  levels = {}
  for name in metrics:
    m = re.fullmatch(r"retrieval_(.+)_top\d+", name)
    if m:
      levels[m.group(1)] = _series(metrics, rf"retrieval_{m.group(1)}_top(\d+)")
  return levels


def _cascade_table(metrics) -> list[str]:
  """Each cascade level's retrieval top-k beside the concatenation's (what is retrieved with)."""
  levels = cascade_levels(metrics)
  if not levels:
    return []
  rows = dict(levels, concatenation=_series(metrics, r"retrieval_top(\d+)"))
  ks = [int(k) for k, _ in rows["concatenation"]]
  lines = ["", "Cascaded embedding (HDC), retrieval top-k per level:", "",
           "| level | " + " | ".join(f"top-{k}" for k in ks) + " |",
           "|---|" + "---:|" * len(ks)]
  for level, points in rows.items():
    values = dict(points)
    lines.append(f"| {level} | " + " | ".join(
        f"{values[k]:.4f}" if k in values else "n/a" for k in ks) + " |")
  return lines


def _series(metrics, pattern):
  """Sorted (x, y) of keys matching pattern's numeric group, NaN dropped."""
  points = []
  for name, value in metrics.items():
    m = re.fullmatch(pattern, name)
    if m and not math.isnan(float(value)):
      points.append((float(m.group(1)), float(value)))
  return sorted(points)


def _save(fig, path):
  FigureCanvasAgg(fig)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  path.write_bytes(buffer.getvalue())


def _retrieval_plot(points, paper, title, levels=None):
  fig = Figure(figsize=(5, 3.5))
  ax = fig.add_subplot()
  ks, acc = zip(*points)
  ax.plot(ks, acc, "o-", label="ours (levels concatenated)" if levels else "ours")
  for level, level_points in (levels or {}).items():
    ax.plot(*zip(*level_points), ".--", alpha=0.7, label=f"level {level}")
  if "retrieval_top20" in paper:
    ax.plot([20], [paper["retrieval_top20"]], "r*", markersize=12,
            label="FashionNet (paper), top-20")
  ax.set(xlabel="k", ylabel="top-k retrieval accuracy", ylim=(0, 1.02), title=title)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right")
  return fig


def _landmark_ne_plot(metrics, paper, title):
  names = [n[len("landmark_ne_"):] for n in metrics if n.startswith("landmark_ne_")]
  values = [float(metrics[f"landmark_ne_{n}"]) for n in names]
  fig = Figure(figsize=(6, 3.5))
  ax = fig.add_subplot()
  bars = ax.bar(range(len(names)), [0 if math.isnan(v) else v for v in values])
  for bar, v in zip(bars, values):
    if math.isnan(v):
      ax.annotate("never\nvisible", (bar.get_x() + bar.get_width() / 2, 0),
                  ha="center", va="bottom", fontsize=7)
  if "landmark_ne" in metrics and not math.isnan(float(metrics["landmark_ne"])):
    ax.axhline(float(metrics["landmark_ne"]), color="C0", ls="--", label="ours, mean")
  if "landmark_ne" in paper:
    ax.axhline(paper["landmark_ne"], color="r", ls=":", label="FashionNet (paper)")
  ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=7)
  ax.set(ylabel="normalised error", title=title)
  ax.legend(fontsize=8)
  return fig


def _detected_plot(points, pixels, title):
  fig = Figure(figsize=(5, 3.5))
  ax = fig.add_subplot()
  thresholds, detected = zip(*points)
  ax.plot(thresholds, [100 * d for d in detected], "o-")
  ax.set(xlabel="distance threshold (" + ("pixels" if pixels else "normalised") + ")",
         ylabel="detected percentage (%)", ylim=(0, 102), title=title)
  ax.grid(alpha=0.3)
  return fig


def write_report(metrics: dict, workdir, step: int, split: str, dataset: str,
                 folder: str = "eval", extra: dict | None = None):
  """Writes workdir/<folder>/<step>.{json,md} and the plots; returns {kind: path}.

  `extra` fields go into the JSON record beside step, split and dataset (and one
  line each under the Markdown title), e.g. the step model selection chose.
  """
  out_dir = epath.Path(workdir) / folder
  out_dir.mkdir(parents=True, exist_ok=True)
  metrics = {name: float(value) for name, value in metrics.items()}
  paper = PAPER_FASHIONNET.get(_dataset_key(dataset), {})
  title = f"{dataset} {split}, step {step}"
  written = {"json": out_dir / f"{step}.json", "markdown": out_dir / f"{step}.md"}

  record = {name: _json_value(v) for name, v in metrics.items()}
  record.update(step=int(step), split=split, dataset=dataset, **(extra or {}))
  written["json"].write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
  table = markdown_table(metrics, step, split, dataset)
  if extra:
    title, rest = table.split("\n", 1)
    table = "\n".join([title, ""] + [f"{k}: {v}" for k, v in extra.items()]) + "\n" + rest
  written["markdown"].write_text(table)

  retrieval = _series(metrics, r"retrieval_top(\d+)")
  if retrieval:
    written["retrieval_plot"] = out_dir / f"{step}_retrieval.png"
    _save(_retrieval_plot(retrieval, paper, title, cascade_levels(metrics)),
          written["retrieval_plot"])
  if any(n.startswith("landmark_ne_") for n in metrics):
    written["landmark_ne_plot"] = out_dir / f"{step}_landmark_ne.png"
    _save(_landmark_ne_plot(metrics, paper, title), written["landmark_ne_plot"])
  for pixels in (True, False):
    detected = _series(metrics, r"landmark_detected_([\d.]+)" + ("px" if pixels else ""))
    if detected:
      written["landmark_detected_plot"] = out_dir / f"{step}_landmark_detected.png"
      _save(_detected_plot(detected, pixels, title), written["landmark_detected_plot"])
      break
  return written


# The rows of the reproduction table (`python -m fashionnet_jax.reproduce`): per
# benchmark, the metrics the paper's Tables 2-5 report.
TABLE_ROWS = {
    "category_attribute": ("category_top3", "category_top5",
                           *(f"attribute_top{k}_recall{'_' + t if t else ''}"
                             for k in (3, 5) for t in _ATTRIBUTES)),
    "inshop": ("retrieval_top1", "retrieval_top20", "retrieval_top50"),
    "consumer2shop": ("retrieval_top1", "retrieval_top20", "retrieval_top50"),
    "landmarks": ("landmark_ne",),
    # Anno_fine (2020): no FashionNet numbers; its six types (schema.FINE_ATTRIBUTE_TYPE_NAMES).
    "category_attribute_fine": ("category_top3", "category_top5",
                                *(f"attribute_top{k}_recall{'_' + t if t else ''}"
                                  for k in (3, 5) for t in ("", *FINE_ATTRIBUTE_TYPE_NAMES.values()))),
}


def reproduction_table(results: dict) -> str:
  """One Markdown table: {benchmark: final test metrics (or None: not run)} beside the paper."""
  lines = ["| benchmark | metric | ours | FashionNet (paper) |", "|---|---|---:|---:|"]
  for benchmark, rows in TABLE_ROWS.items():
    if benchmark not in results:
      continue
    metrics = results[benchmark]
    paper = PAPER_FASHIONNET.get(benchmark, {})
    for name in rows:
      if metrics is None:
        ours = "not run"
      else:
        value = metrics.get(name)
        ours = "n/a" if value is None else _in_paper_units(name, float(value))
      theirs = paper.get(name)
      theirs = "" if theirs is None else (
        f"{theirs:.2f}" if name.startswith(_PERCENT_PREFIXES) else f"{theirs:g}")
      lines.append(f"| {benchmark} | {name} | {ours} | {theirs} |")
  return "\n".join(lines) + "\n"

