"""The package's imports follow the flow (docs/design.md, "Layout"), read off the source with ast.

data/, synthetic/ and models/ never import training/, evaluation/ or inference/;
training/ and evaluation/ never import each other (train.py joins them); nothing
below the commands imports a command or train.py; no circle, lazy imports
(inside functions) included.
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "fashionnet_jax"

# Top-level modules that are library, not commands: everything else at the top is a command.
TOP_LIBRARY = {"schema", "errors", "sharding", "cli", "console"}
ORCHESTRATOR = "train"
FOLDERS = ("data", "synthetic", "models", "training", "evaluation", "inference")
# What each place may not import (folders, or top-level module names).
FORBIDDEN = {
    "schema": {"*"},
    "errors": {"*"},
    "synthetic": {"data", "models", "training", "evaluation", "inference"},
    "data": {"models", "training", "evaluation", "inference"},
    "models": {"training", "evaluation", "inference"},
    "training": {"evaluation", "inference"},
    "evaluation": {"training", "inference"},
}


def module_files(root: pathlib.Path, package: str) -> dict[str, pathlib.Path]:
  out = {}
  for path in sorted((root / package).rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = path
  return out


def import_graph(root: pathlib.Path, package: str) -> dict[str, set[str]]:
  """module -> package modules it imports anywhere in its file (functions included)."""
  modules = module_files(root, package)
  graph = {m: set() for m in modules}
  for name, path in modules.items():
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
          anchor = name.split(".") if is_package else name.split(".")[:-1]
          anchor = anchor[: len(anchor) - node.level + 1]
          base = ".".join(anchor + ([base] if base else []))
        # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
        targets = [
            f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
        ]
      for target in targets:
        # Importing one's own enclosing package is how Python reaches a sibling: not an edge.
        if target in modules and target != name and not name.startswith(target + "."):
          graph[name].add(target)
  return graph


def place(module: str) -> str:
  """The folder (data, models, ...) or top-level module name a module belongs to."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else "__init__"


def is_command(module: str) -> bool:
  parts = module.split(".")
  if len(parts) == 2:
    return parts[1] not in TOP_LIBRARY | {ORCHESTRATOR, *FOLDERS}
  return parts[1] == "benchmarks" or parts[-1] == "__main__"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One cycle per strongly connected component with more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def violations(graph: dict[str, set[str]]) -> list[str]:
  """Every import against the flow, as 'a -> b: why'."""
  out = []
  for source, targets in sorted(graph.items()):
    for target in sorted(targets):
      src, dst = place(source), place(target)
      if src == dst:
        continue
      forbidden = FORBIDDEN.get(src, set())
      if "*" in forbidden or dst in forbidden:
        out.append(f"{source} -> {target}: {src} may not import {dst}")
      elif not is_command(source) and is_command(target):
        out.append(f"{source} -> {target}: only commands import commands")
      elif not is_command(source) and dst == ORCHESTRATOR:
        out.append(f"{source} -> {target}: train.py sits above the library")
  return out


@pytest.fixture(scope="module")
def graph():
  return import_graph(ROOT, PACKAGE)


def test_the_package_has_no_import_circle(graph):
  assert circles(graph) == []


def test_imports_follow_the_flow(graph):
  assert violations(graph) == []


def test_the_flow_is_the_documented_one(graph):
  # The walk sees the real edges, so the rules above are not vacuous.
  assert "fashionnet_jax.training.train_setup" in graph["fashionnet_jax.train"]
  assert "fashionnet_jax.evaluation.loop" in graph["fashionnet_jax.train"]
  # One eval-mode predict step, below both of its users.
  assert "fashionnet_jax.models.functional" in graph["fashionnet_jax.training.train_setup"]
  assert "fashionnet_jax.models.functional" in graph["fashionnet_jax.inference.predictor"]
  assert "fashionnet_jax.synthetic" in graph["fashionnet_jax.data.prepare"]  # a lazy import
  assert is_command("fashionnet_jax.main") and is_command("fashionnet_jax.synthetic.__main__")
  assert not is_command("fashionnet_jax.train") and not is_command("fashionnet_jax.schema")


def _write(root, files):
  for rel, text in files.items():
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checks_catch_a_circle_and_a_backward_import(tmp_path):
  _write(
      tmp_path,
      {
          "fashionnet_jax/__init__.py": "",
          "fashionnet_jax/main.py": "",
          "fashionnet_jax/train.py": "",
          "fashionnet_jax/data/__init__.py": "",
          "fashionnet_jax/data/a.py": "def f():\n  from fashionnet_jax.data import b\n",
          "fashionnet_jax/data/b.py": "from . import a\nimport fashionnet_jax.training.c\n",
          "fashionnet_jax/training/__init__.py": "",
          "fashionnet_jax/training/c.py": "from fashionnet_jax.evaluation.d import g\n",
          "fashionnet_jax/evaluation/__init__.py": "",
          "fashionnet_jax/evaluation/d.py": "from fashionnet_jax import main, train\ng = 1\n",
      },
  )
  fake = import_graph(tmp_path, PACKAGE)
  assert circles(fake) == [["fashionnet_jax.data.a", "fashionnet_jax.data.b"]]
  assert violations(fake) == [
      "fashionnet_jax.data.b -> fashionnet_jax.training.c: data may not import training",
      "fashionnet_jax.evaluation.d -> fashionnet_jax.main: only commands import commands",
      "fashionnet_jax.evaluation.d -> fashionnet_jax.train: train.py sits above the library",
      "fashionnet_jax.training.c -> fashionnet_jax.evaluation.d: training may not import evaluation",
  ]


# ------------------------------------------------ folder docstrings and pointers


def named_in_docstring(doc: str) -> list[str]:
  """The names in a docstring's `Modules:` paragraph: its words outside parentheses.

  The paragraph lists `name (what it does)` items, commas between; a folder
  (a subpackage, static/) ends in '/'.
  """
  paragraphs = [p for p in doc.split("\n\n") if p.startswith("Modules:")]
  if len(paragraphs) != 1:
    raise ValueError("no (or more than one) `Modules:` paragraph")
  depth, outside = 0, []
  for char in paragraphs[0][len("Modules:") :]:
    depth += (char == "(") - (char == ")")
    if depth == 0 and char != ")":
      outside.append(char)
  return "".join(outside).replace(",", " ").replace(".", " ").split()


def folder_entries(folder: pathlib.Path) -> tuple[set[str], set[str]]:
  """(what a docstring must name: modules and subpackages/, what else it may name: folders/)."""
  must = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
  folders = {
      p.name + "/" for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
  }
  packages = {f for f in folders if (folder / f / "__init__.py").exists()}
  return must | packages, folders - packages


def docstring_errors(root: pathlib.Path, package: str) -> list[str]:
  """Every package folder whose __init__ docstring misses a module or names one that is not there."""
  out = []
  for init in sorted((root / package).rglob("__init__.py")):
    where = init.relative_to(root)
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    try:
      named = named_in_docstring(doc)
    except ValueError as e:
      out.append(f"{where}: {e}")
      continue
    must, may = folder_entries(init.parent)
    out += [f"{where}: does not name {name}" for name in sorted(must - set(named))]
    out += [
        f"{where}: names {name}, which is not there" for name in named if name not in must | may
    ]
  return out


def test_every_folder_docstring_names_its_modules():
  assert docstring_errors(ROOT, PACKAGE) == []


def test_the_docstring_check_catches_a_missing_and_a_moved_module(tmp_path):
  _write(
      tmp_path,
      {
          "fashionnet_jax/__init__.py": '"""Top.\n\nModules: data/ (the data), main (a command)."""\n',
          "fashionnet_jax/main.py": "",
          "fashionnet_jax/data/__init__.py": '"""Data.\n\nModules: a (one, (nested) b), gone (moved)."""\n',
          "fashionnet_jax/data/a.py": "",
          "fashionnet_jax/data/b.py": "",
          "fashionnet_jax/data/static/page.html": "",
          "fashionnet_jax/models/__init__.py": '"""Models, without a list."""\n',
      },
  )
  assert docstring_errors(tmp_path, PACKAGE) == [
      "fashionnet_jax/__init__.py: does not name models/",
      "fashionnet_jax/data/__init__.py: does not name b",
      "fashionnet_jax/data/__init__.py: names gone, which is not there",
      "fashionnet_jax/models/__init__.py: no (or more than one) `Modules:` paragraph",
  ]


# Pointers to documents outside the repository: the team's design and format notes
# (the repository's own are docs/design.md and docs/deepfashion.md) and the sibling
# shared/ folder. CI's sample photos folder (FASHIONNET_SAMPLES) is data, not a document.
OUTSIDE_POINTERS = re.compile(
    r"DESIGN\.md|FORMATS\.md|source notes|/work/shared|\.\./shared/(?!deepfashion/samples\b)"
)
SEARCHED = ("fashionnet_jax", "configs", "datasets", "tests", "launch")


def outside_pointers(root: pathlib.Path) -> list[str]:
  """'path:line: text' for every line of the searched tree that points outside the repository."""
  out = []
  for top in SEARCHED:
    for path in sorted((root / top).rglob("*")):
      if (
          not path.is_file()
          or path.suffix in (".pyc", ".png", ".jpg", ".npz", ".zip")
          or path.resolve() == pathlib.Path(__file__).resolve()
      ):  # this file names the patterns
        continue
      try:
        lines = path.read_text().splitlines()
      except UnicodeDecodeError:
        continue
      out += [
          f"{path.relative_to(root)}:{n}: {line.strip()}"
          for n, line in enumerate(lines, 1)
          if OUTSIDE_POINTERS.search(line)
      ]
  return out


def test_nothing_points_outside_the_repository():
  assert outside_pointers(ROOT) == []


def test_the_pointer_check_catches_each_kind(tmp_path):
  _write(
      tmp_path,
      {
          "fashionnet_jax/a.py": "# see DESIGN.md\n# fine: docs/design.md\n",
          "configs/b.py": "X = 1  # (../shared/deepfashion/FORMATS.md)\n",
          "tests/c.py": '"""As the source notes say."""\n',
          "launch/d.sh": "cp /work/shared/x .\n# FASHIONNET_SAMPLES=../shared/deepfashion/samples\n",
      },
  )
  assert [line.split(":")[0] + ":" + line.split(":")[1] for line in outside_pointers(tmp_path)] == [
      "fashionnet_jax/a.py:1",
      "configs/b.py:1",
      "tests/c.py:1",
      "launch/d.sh:1",
  ]
