"""Evaluation reports: JSON, a Markdown table beside the paper, PNG plots.

`write_report(metrics, workdir, step, split, dataset)` takes the flat metric
dict of `evaluation.metrics.*_metrics` (fractions in [0, 1]) and writes, under
`workdir/eval/` (validation during model selection: `workdir/eval/validation/`;
any etils.epath path, gs:// included):
- `<step>.json`: the metrics plus step, split and dataset (and `extra`, e.g.
  the eval loop's test-time crop protocol); NaN (a landmark never visible, an
  attribute type without positives) is written as null;
- `<step>.md`: one row per metric, ours next to FashionNet's published number
  in the paper's units (category and attributes in %, retrieval as a
  fraction, NE in the bbox-normalised units), each published number with its
  source (paper, table, protocol: `SOURCES`); a model evaluated on synthetic
  DeepFashion (`trained_on`: data.prepare.SYNTHETIC) is labelled so, and the
  published (real DeepFashion) numbers are left out of its table and plots;
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

from fashionnet_jax.data.prepare import SYNTHETIC
from fashionnet_jax.schema import FINE_ATTRIBUTE_TYPE_NAMES, LANDMARK_NAMES

# FashionNet's published numbers, by builder config, in the papers' units; where
# each comes from is `paper_source`.
_ATTRIBUTES = {
    "texture": (37.46, 49.52),
    "fabric": (39.30, 49.84),
    "shape": (39.47, 48.59),
    "part": (44.13, 54.02),
    "style": (66.43, 73.16),
    "": (45.52, 54.61),
}
PAPER_FASHIONNET = {
    "category_attribute": {
        "category_top3": 82.58,
        "category_top5": 90.17,
        **{f"attribute_top3_recall{'_' + t if t else ''}": v[0] for t, v in _ATTRIBUTES.items()},
        **{f"attribute_top5_recall{'_' + t if t else ''}": v[1] for t, v in _ATTRIBUTES.items()},
        "landmark_ne": 0.0872,
        **dict(
            zip(
                (f"landmark_ne_{n}" for n in LANDMARK_NAMES),
                (0.0854, 0.0902, 0.0973, 0.0935, 0.0854, 0.0845, 0.0812, 0.0823),
            )
        ),
    },
    "inshop": {"retrieval_top20": 0.764},
    "consumer2shop": {"retrieval_top20": 0.188},
    "landmarks": {
        "landmark_ne": 0.0859,
        **dict(
            zip(
                (f"landmark_ne_{n}" for n in LANDMARK_NAMES),
                (0.0781, 0.0803, 0.0975, 0.0923, 0.0874, 0.0821, 0.0802, 0.0893),
            )
        ),
    },
}
# Where each published number comes from (paper, table, protocol). What could not
# be checked against the paper itself is said so, not guessed.
SOURCES = {
    "cvpr16": "Liu et al., DeepFashion, CVPR 2016: FashionNet's category and attribute "
    "results (top-k accuracy; top-k recall with all 1000 attribute scores ranked "
    "once); table number not checked here",
    "cvpr16_retrieval": "Liu et al., DeepFashion, CVPR 2016: FashionNet's top-20 retrieval "
    "accuracy (In-shop / consumer-to-shop); the figure or table it is "
    "read from not checked here",
    "afgn": "FashionNet as re-evaluated by Wang et al., AFGN (Attentive Fashion Grammar "
    "Network), CVPR 2018, landmark NE table on DeepFashion-C / FLD: NE in the "
    "ground-truth bbox frame (x / bbox width, y / bbox height), visible landmarks; "
    "values as repeated by Lee et al., GLE, ICCVW 2019 (README results); AFGN's "
    "table number not checked here. The DeepFashion paper itself plots detection "
    "rates, not NE",
}
_LANDMARK_FRAMES = (
    "Landmarks: `landmark_ne` and `landmark_ne_<name>` are in the ground-truth bbox's frame "
    "(x / bbox width, y / bbox height, visible landmarks inside the bbox), as the published "
    "NE; `landmark_ne_image` divides by the image's width and height instead (no paper "
    "reports it); `landmark_detected_bbox224_<t>px` counts visible landmarks within t "
    "pixels in the bbox resized to 224x224 (the released NE code's input frame; the "
    "DeepFashion paper's detection-rate plots are not compared here)."
)
_PERCENT_PREFIXES = ("category_", "attribute_", "landmark_detected_")
_PROTOCOLS = (
    "Attribute recall per type, two protocols that are not comparable: "
    "`attribute_top{k}_recall_<type>` is the paper's (all attribute scores ranked once, "
    "recall over that type's positives), the one the paper column matches; "
    "`..._<type>_within_type` ranks only the type's attributes, as later papers "
    "(AFGN; Liu & Lu, ECCV 2018 workshop) report it."
)


def paper_source(benchmark: str, name: str) -> str | None:
  """The `SOURCES` key of a published number (None: no published number)."""
  if name not in PAPER_FASHIONNET.get(benchmark, {}):
    return None
  if name.startswith("landmark_ne"):
    return "afgn"
  return "cvpr16_retrieval" if name.startswith("retrieval_") else "cvpr16"


def _sources_legend(used) -> list[str]:
  return ["", "Sources of the published numbers:", ""] + [
      f"- [{key}] {SOURCES[key]}." for key in SOURCES if key in used
  ]


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


def _published(benchmark, name):
  """(number in the paper's units, source key), or ('', '')."""
  theirs = PAPER_FASHIONNET.get(benchmark, {}).get(name)
  if theirs is None:
    return "", ""
  number = f"{theirs:.2f}" if name.startswith(_PERCENT_PREFIXES) else f"{theirs:g}"
  return number, f"[{paper_source(benchmark, name)}]"


_SYNTHETIC_NOTE = (
    f"Data: {SYNTHETIC}, procedurally drawn garments, not DeepFashion's photos. "
    "FashionNet's published numbers (real DeepFashion) are not comparable and are left out."
)


def markdown_table(metrics, step, split, dataset, trained_on: str | None = None) -> str:
  """The Markdown report; `trained_on` SYNTHETIC: labelled, without the published column."""
  benchmark = _dataset_key(dataset)
  synthetic = trained_on == SYNTHETIC
  lines = [f"# Evaluation: {dataset}, split {split}, step {step}", ""]
  if synthetic:
    lines += [
        _SYNTHETIC_NOTE,
        "",
        "Category, attributes and detected percentage in %; retrieval top-k "
        "accuracy as a fraction; NE in normalised units.",
        "",
    ]
  else:
    lines += [
        "Category, attributes and detected percentage in %; retrieval top-k "
        "accuracy as a fraction; NE in normalised units. Published = FashionNet's "
        "number, its source under the table.",
        "",
    ]
  if any(name.endswith("_within_type") for name in metrics):
    lines += [_PROTOCOLS, ""]
  if any(name.startswith("landmark_") for name in metrics):
    lines += [_LANDMARK_FRAMES, ""]
  if synthetic:
    lines += ["| metric | ours |", "|---|---:|"]
    lines += [
        f"| {name} | {_in_paper_units(name, float(value))} |" for name, value in metrics.items()
    ]
    return "\n".join(lines + _cascade_table(metrics)) + "\n"
  lines += ["| metric | ours | FashionNet (published) | source |", "|---|---:|---:|---|"]
  used = set()
  for name, value in metrics.items():
    theirs, source = _published(benchmark, name)
    used.add(paper_source(benchmark, name))
    lines.append(f"| {name} | {_in_paper_units(name, float(value))} | {theirs} | {source} |")
  if used - {None}:
    lines += _sources_legend(used)
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
  lines = [
      "",
      "Cascaded embedding (HDC), retrieval top-k per level:",
      "",
      "| level | " + " | ".join(f"top-{k}" for k in ks) + " |",
      "|---|" + "---:|" * len(ks),
  ]
  for level, points in rows.items():
    values = dict(points)
    lines.append(
        f"| {level} | "
        + " | ".join(f"{values[k]:.4f}" if k in values else "n/a" for k in ks)
        + " |"
    )
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
    ax.plot(
        [20], [paper["retrieval_top20"]], "r*", markersize=12, label="FashionNet (paper), top-20"
    )
  ax.set(xlabel="k", ylabel="top-k retrieval accuracy", ylim=(0, 1.02), title=title)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right")
  return fig


def _landmark_names(metrics):
  """The per-landmark NE keys' names (landmark_ne_image is another frame, not a landmark)."""
  return [
      n[len("landmark_ne_") :]
      for n in metrics
      if n.startswith("landmark_ne_") and n != "landmark_ne_image"
  ]


def _landmark_ne_plot(metrics, paper, title):
  names = _landmark_names(metrics)
  values = [float(metrics[f"landmark_ne_{n}"]) for n in names]
  fig = Figure(figsize=(6, 3.5))
  ax = fig.add_subplot()
  bars = ax.bar(range(len(names)), [0 if math.isnan(v) else v for v in values])
  for bar, v in zip(bars, values):
    if math.isnan(v):
      ax.annotate(
          "never\nvisible",
          (bar.get_x() + bar.get_width() / 2, 0),
          ha="center",
          va="bottom",
          fontsize=7,
      )
  if "landmark_ne" in metrics and not math.isnan(float(metrics["landmark_ne"])):
    ax.axhline(float(metrics["landmark_ne"]), color="C0", ls="--", label="ours, mean")
  if "landmark_ne" in paper:
    ax.axhline(paper["landmark_ne"], color="r", ls=":", label="FashionNet (AFGN's table)")
  ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=7)
  ax.set(ylabel="NE (x / bbox width, y / bbox height)", title=title)
  ax.legend(fontsize=8)
  return fig


def _detected_plot(points, frame, title):
  fig = Figure(figsize=(5, 3.5))
  ax = fig.add_subplot()
  thresholds, detected = zip(*points)
  ax.plot(thresholds, [100 * d for d in detected], "o-")
  ax.set(
      xlabel=f"distance threshold (pixels, ground-truth bbox resized to {frame}x{frame})",
      ylabel="detected percentage (%)",
      ylim=(0, 102),
      title=title,
  )
  ax.grid(alpha=0.3)
  return fig


def _line(value) -> str:
  """One Markdown line for an `extra` field (a dict, e.g. the protocol, as 'key: value; ...')."""
  if isinstance(value, dict):
    return "; ".join(f"{k}: {v}" for k, v in value.items())
  return str(value)


def write_report(
    metrics: dict,
    workdir,
    step: int,
    split: str,
    dataset: str,
    folder: str = "eval",
    extra: dict | None = None,
    trained_on: str | None = None,
):
  """Writes workdir/<folder>/<step>.{json,md} and the plots; returns {kind: path}.

  `extra` fields go into the JSON record beside step, split and dataset (and one
  line each under the Markdown title), e.g. the step model selection chose.
  `trained_on` (data.prepare.trained_on) goes into the JSON; SYNTHETIC labels the
  Markdown and leaves the published numbers out of it and of the plots.
  """
  out_dir = epath.Path(workdir) / folder
  out_dir.mkdir(parents=True, exist_ok=True)
  metrics = {name: float(value) for name, value in metrics.items()}
  synthetic = trained_on == SYNTHETIC
  paper = {} if synthetic else PAPER_FASHIONNET.get(_dataset_key(dataset), {})
  title = f"{dataset} {split}, step {step}" + (f" ({SYNTHETIC})" if synthetic else "")
  written = {"json": out_dir / f"{step}.json", "markdown": out_dir / f"{step}.md"}

  record = {name: _json_value(v) for name, v in metrics.items()}
  record.update(
      step=int(step),
      split=split,
      dataset=dataset,
      **({"trained_on": trained_on} if trained_on else {}),
      **(extra or {}),
  )
  written["json"].write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
  table = markdown_table(metrics, step, split, dataset, trained_on)
  if extra:
    title, rest = table.split("\n", 1)
    table = "\n".join([title, ""] + [f"{k}: {_line(v)}" for k, v in extra.items()]) + "\n" + rest
  written["markdown"].write_text(table)

  retrieval = _series(metrics, r"retrieval_top(\d+)")
  if retrieval:
    written["retrieval_plot"] = out_dir / f"{step}_retrieval.png"
    _save(
        _retrieval_plot(retrieval, paper, title, cascade_levels(metrics)), written["retrieval_plot"]
    )
  if _landmark_names(metrics):
    written["landmark_ne_plot"] = out_dir / f"{step}_landmark_ne.png"
    _save(_landmark_ne_plot(metrics, paper, title), written["landmark_ne_plot"])
  frames = sorted(
      {m.group(1) for n in metrics if (m := re.fullmatch(r"landmark_detected_bbox(\d+)_.+", n))}
  )
  for frame in frames[:1]:
    detected = _series(metrics, rf"landmark_detected_bbox{frame}_([\d.]+)px")
    written["landmark_detected_plot"] = out_dir / f"{step}_landmark_detected.png"
    _save(_detected_plot(detected, frame, title), written["landmark_detected_plot"])
  return written


# The rows of the reproduction table (`python -m fashionnet_jax.reproduce`): per
# benchmark, the metrics the paper's Tables 2-5 report.
TABLE_ROWS = {
    "category_attribute": (
        "category_top3",
        "category_top5",
        *(f"attribute_top{k}_recall{'_' + t if t else ''}" for k in (3, 5) for t in _ATTRIBUTES),
    ),
    "inshop": ("retrieval_top1", "retrieval_top20", "retrieval_top50"),
    "consumer2shop": ("retrieval_top1", "retrieval_top20", "retrieval_top50"),
    "landmarks": ("landmark_ne",),
    # Anno_fine (2020): no FashionNet numbers; its six types (schema.FINE_ATTRIBUTE_TYPE_NAMES).
    "category_attribute_fine": (
        "category_top3",
        "category_top5",
        *(
            f"attribute_top{k}_recall{'_' + t if t else ''}"
            for k in (3, 5)
            for t in ("", *FINE_ATTRIBUTE_TYPE_NAMES.values())
        ),
    ),
}


def reproduction_table(results: dict) -> str:
  """One Markdown table: {benchmark: final test metrics (or None: not run)} beside the paper."""
  lines = [
      "| benchmark | metric | ours | FashionNet (published) | source |",
      "|---|---|---:|---:|---|",
  ]
  used = set()
  for benchmark, rows in TABLE_ROWS.items():
    if benchmark not in results:
      continue
    metrics = results[benchmark]
    for name in rows:
      if metrics is None:
        ours = "not run"
      else:
        value = metrics.get(name)
        ours = "n/a" if value is None else _in_paper_units(name, float(value))
      theirs, source = _published(benchmark, name)
      used.add(paper_source(benchmark, name))
      lines.append(f"| {benchmark} | {name} | {ours} | {theirs} | {source} |")
  if used - {None}:
    lines += _sources_legend(used)
  return "\n".join(lines) + "\n"
