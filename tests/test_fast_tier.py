"""The fast tier (`python -m pytest -m "not slow"`) still touches every package folder.

Read from the test files' syntax, not by running them: a test touches a folder when
it (or its module's imports, fixtures and helpers, where the module keeps a fast
test) imports from it, or runs it as `-m fashionnet_jax.X`. Top-level modules a
user runs (test_layout's commands) count as the folder "commands"; the string
"launch" as the launch/ scripts.
"""

import ast
from pathlib import Path

from test_layout import is_command

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "fashionnet_jax"


def package_folders() -> set[str]:
  """Subpackages, plus "commands" and "launch" (the scripts beside the package)."""
  return {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} | {
      "commands",
      "launch",
  }


def is_slow(node) -> bool:
  """`@pytest.mark.slow` on a test, or `pytestmark = pytest.mark.slow` (alone or in a list)."""
  if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
    return any("pytest.mark.slow" in ast.unparse(d) for d in node.decorator_list)
  return (
      isinstance(node, ast.Assign)
      and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
      and "pytest.mark.slow" in ast.unparse(node.value)
  )


def modules_named(node) -> list[str]:
  """Modules that `node` imports or runs (`"-m", "fashionnet_jax.X"` in a list), and "launch"."""
  names = []
  for sub in ast.walk(node):
    if isinstance(sub, ast.Import):
      names += [a.name for a in sub.names]
    elif isinstance(sub, ast.ImportFrom) and sub.module:
      names += [sub.module] + [f"{sub.module}.{a.name}" for a in sub.names]
    elif isinstance(sub, (ast.List, ast.Tuple)):
      values = [e.value if isinstance(e, ast.Constant) else None for e in sub.elts]
      names += [b for a, b in zip(values, values[1:]) if a == "-m" and isinstance(b, str)]
    elif isinstance(sub, ast.Constant) and sub.value == "launch":
      names.append("launch")
  return names


def folders_named(node) -> set[str]:
  """The package folders that `node` imports from or runs."""
  folders, found = package_folders(), set()
  for name in modules_named(node):
    parts = name.split(".")
    if name == "launch":
      found.add("launch")
    elif parts[0] == "fashionnet_jax" and len(parts) > 1:
      found.add(
          parts[1]
          if parts[1] in folders
          else "commands"
          if is_command(f"fashionnet_jax.{parts[1]}")
          else None
      )
  return found & folders


def fast_tier_touches(source: str) -> set[str]:
  """The folders one test file's fast tests touch (none when all its tests are slow)."""
  tree = ast.parse(source)
  if any(is_slow(node) for node in tree.body if isinstance(node, ast.Assign)):
    return set()
  tests = [
      n
      for n in tree.body
      if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name.startswith(("test", "Test"))
  ]
  fast = [n for n in tests if not is_slow(n)]
  if not fast:
    return set()
  rest = [n for n in tree.body if n not in tests]
  return set().union(*(folders_named(n) for n in rest + fast))


def test_the_fast_tier_touches_every_package_folder():
  touched = set()
  for path in sorted(set(TESTS.glob("test_*.py")) - {Path(__file__).resolve()}):
    touched |= fast_tier_touches(path.read_text())
  missing = package_folders() - touched
  assert not missing, f"no fast test touches {sorted(missing)}: unmark one as slow"


def test_a_slow_mark_takes_a_test_out_of_the_reckoning():
  body = "def test_a():\n  from fashionnet_jax.data import pipeline\n"
  assert fast_tier_touches("import pytest\n" + body) == {"data"}
  assert fast_tier_touches("import pytest\n@pytest.mark.slow\n" + body) == set()
  assert fast_tier_touches("import pytest\npytestmark = [pytest.mark.slow]\n" + body) == set()
  both = (
      "from fashionnet_jax import export\n@pytest.mark.slow\n"
      + body
      + "def test_b():\n  run(['python', '-m', 'fashionnet_jax.predict', 'launch'])\n"
  )
  assert fast_tier_touches(both) == {"export", "commands", "launch"}
  with_launch = "LAUNCH = ROOT / 'launch'\ndef test_c():\n  pass\n"
  assert fast_tier_touches(with_launch) == {"launch"}
