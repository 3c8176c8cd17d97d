"""The study's table and plot: each variant's final test metrics side by side.

Writes `<study>/study.md` (one row per metric, one column per variant, the best
in bold; steps and wall time last), `study.json` (the same numbers) and
`study.png` (grouped bars). Metrics are fractions (landmark NE: lower is better).
"""

from __future__ import annotations

import io
import json
import math
import pathlib
import re

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LOWER_IS_BETTER = re.compile(r"landmark_ne.*")


def rows(preset, results: dict) -> list[str]:
  """The preset's rows that some variant has, families (regular expressions) expanded."""
  names = sorted({k for r in results.values() for k in r["metrics"]})
  out = []
  for row in preset.rows:
    for name in ([row] if row in names else [n for n in names if re.fullmatch(row, n)]):
      if name not in out:
        out.append(name)
  return out


def _value(result, name):
  value = result["metrics"].get(name)
  return None if value is None or math.isnan(float(value)) else float(value)


def markdown(preset, results: dict) -> str:
  variants = list(results)
  lines = [
      f"# Study `{preset.name}`: {preset.question}",
      "",
      "Final test metrics (fractions; landmark NE: lower is better; best in bold).",
      "",
      "| metric | " + " | ".join(variants) + " |",
      "|---|" + "---:|" * len(variants),
  ]
  for name in rows(preset, results):
    values = [_value(results[v], name) for v in variants]
    known = [v for v in values if v is not None]
    best = (min if LOWER_IS_BETTER.fullmatch(name) else max)(known) if len(known) > 1 else None
    cells = ["n/a" if v is None else (f"**{v:.4f}**" if v == best else f"{v:.4f}") for v in values]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines.append("| steps | " + " | ".join(str(results[v]["steps"]) for v in variants) + " |")
  lines.append(
      "| wall time (s) | " + " | ".join(f"{results[v]['wall_s']:.0f}" for v in variants) + " |"
  )
  return "\n".join(lines) + "\n"


def plot(preset, results: dict) -> Figure:
  names = rows(preset, results)
  fig = Figure(figsize=(max(6, 0.55 * len(names) * len(results) ** 0.5 + 2), 4))
  ax = fig.add_subplot()
  width = 0.8 / max(len(results), 1)
  for i, (variant, result) in enumerate(results.items()):
    values = [_value(result, n) for n in names]
    ax.bar(
        [j + i * width for j in range(len(names))], [v or 0 for v in values], width, label=variant
    )
  ax.set_xticks(
      [j + 0.4 - width / 2 for j in range(len(names))], names, rotation=60, ha="right", fontsize=7
  )
  ax.set(
      ylim=(0, 1.02),
      ylabel="fraction (NE: lower is better)",
      title=f"study {preset.name}: {', '.join(results)}",
  )
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=8)
  return fig


def write(preset, results: dict, folder) -> dict:
  folder = pathlib.Path(folder)
  written = {
      "markdown": folder / "study.md",
      "json": folder / "study.json",
      "plot": folder / "study.png",
  }
  written["markdown"].write_text(markdown(preset, results))
  record = dict(
      preset=preset.name,
      question=preset.question,
      rows=rows(preset, results),
      variants={
          v: dict(r, metrics={k: _value(r, k) for k in r["metrics"]}) for v, r in results.items()
      },
  )
  written["json"].write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
  fig = plot(preset, results)
  FigureCanvasAgg(fig)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  written["plot"].write_bytes(buffer.getvalue())
  return written
