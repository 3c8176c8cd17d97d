"""What the commands show a person at a terminal: what matters, quietly, with progress.

- Quiet start-up: TensorFlow's C++ INFO lines are off unless asked, by
  `TF_CPP_MIN_LOG_LEVEL=1` set before TensorFlow loads (here, on import: every command
  imports this module first; only the log level changes, never a numeric option), and
  the two banners TensorFlow writes while it loads, before any log level applies
  (oneDNN's, absl's "All log messages before absl::InitializeLog()"), are taken out of
  its stderr by `import_tensorflow`, which the code that needs TensorFlow calls. TFDS's wording and progress bars for a local build (`quiet_tfds`) and
  Orbax's warnings that do not apply to a read-only restore (`drop_absl_warnings`)
  are silenced where the project calls them.
- `--verbose` (every command; `set_verbose`) brings all of it back, as does
  FASHIONNET_VERBOSE=1 or a TF_CPP_MIN_LOG_LEVEL the user set.
- `say` / `phase`: one line per step of long work on stderr, with its duration.
- `Progress`: a tqdm bar on a terminal (step, loss, images/s, time left); elsewhere
  one concise line every `every` steps.
"""

from __future__ import annotations

import contextlib
import io
import logging as std_logging
import os
import sys
import tempfile
import time

VERBOSE_ENV = "FASHIONNET_VERBOSE"
_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
_QUIET_TF_LOG_LEVEL = "1"  # TensorFlow's C++ INFO lines off; its warnings and errors stay


def verbose() -> bool:
  """Whether the user asked for every library's own messages (--verbose)."""
  return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def _quiet_environment() -> None:
  """TensorFlow's C++ log level, before TensorFlow loads (a user's own setting wins)."""
  if not verbose():
    os.environ.setdefault(_TF_LOG_LEVEL, _QUIET_TF_LOG_LEVEL)


def set_verbose(on: bool) -> None:
  """--verbose: every library's messages, TensorFlow's C++ INFO lines included (when
  TensorFlow has not loaded yet: commands call this right after parsing their flags)."""
  if not on:
    return
  os.environ[VERBOSE_ENV] = "1"
  if os.environ.get(_TF_LOG_LEVEL) == _QUIET_TF_LOG_LEVEL:
    os.environ[_TF_LOG_LEVEL] = "0"


_quiet_environment()


# What TensorFlow's C++ writes to stderr while it loads, whatever TF_CPP_MIN_LOG_LEVEL says.
_TENSORFLOW_BANNERS = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on.",
)


def import_tensorflow() -> None:
  """Imports TensorFlow (once), dropping its load-time banners from stderr (file
  descriptor 2, where its C++ writes) and passing on every other line; all of it
  under --verbose."""
  if "tensorflow" in sys.modules or verbose():
    import tensorflow  # noqa: F401

    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # noqa: F401
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      lines = captured.read().decode(errors="replace").splitlines(keepends=True)
      sys.stderr.write(
          "".join(
              line for line in lines if not any(banner in line for banner in _TENSORFLOW_BANNERS)
          )
      )
      sys.stderr.flush()


def say(message: str) -> None:
  """One line for the person running the command (stderr, flushed; above a progress bar)."""
  from tqdm import tqdm

  tqdm.write(message, file=sys.stderr)
  sys.stderr.flush()


def duration(seconds: float) -> str:
  """'42 s', '3 min 05 s'."""
  seconds = int(round(seconds))
  return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


@contextlib.contextmanager
def phase(what: str):
  """Says `what ...` before the work and `what: done in N s` after it."""
  say(f"{what} ...")
  start = time.perf_counter()
  yield
  say(f"{what}: done in {duration(time.perf_counter() - start)}")


@contextlib.contextmanager
def quiet_tfds(progress_bars: bool = False):
  """A local TFDS build without its download wording ('Downloading and preparing dataset
  Unknown size ...', printed on stdout) and INFO logs, and unless `progress_bars` without
  its progress bars (shuffle bars named by long temporary paths). Nothing changes under
  --verbose."""
  if verbose():
    yield
    return
  from absl import logging
  from tensorflow_datasets.core.utils import tqdm_utils

  bars, level = getattr(tqdm_utils, "_active", True), logging.get_verbosity()
  tqdm_utils.display_progress_bar(bars and progress_bars)
  logging.set_verbosity(max(level, logging.WARNING))
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    logging.set_verbosity(level)
    tqdm_utils.display_progress_bar(bars)


class _DropMessages(std_logging.Filter):

  def __init__(self, prefixes):
    super().__init__()
    self.prefixes = tuple(prefixes)

  def filter(self, record):
    return not record.getMessage().startswith(self.prefixes)


@contextlib.contextmanager
def drop_absl_warnings(*prefixes: str):
  """absl log records starting with one of `prefixes` are dropped while the block runs
  (a library's warnings that do not apply to how the project calls it); kept under --verbose."""
  if verbose():
    yield
    return
  logger = std_logging.getLogger("absl")
  dropped = _DropMessages(prefixes)
  logger.addFilter(dropped)
  try:
    yield
  finally:
    logger.removeFilter(dropped)


class Progress:
  """Training progress: a tqdm bar on a terminal, else one line every `every` steps.

  `update(step, loss)` after each step (`loss` may be None between log steps: the bar
  keeps the last one shown); images/s and time left are measured from the second
  update on (the first step includes the compile).
  """

  def __init__(
      self,
      total: int,
      start: int,
      batch_size: int,
      every: int,
      stream=None,
      terminal: bool | None = None,
  ):
    self.total, self.start, self.batch_size, self.every = total, start, batch_size, max(1, every)
    self.stream = stream or sys.stderr
    is_terminal = getattr(self.stream, "isatty", lambda: False)()
    self.terminal = is_terminal if terminal is None else terminal
    self._t0, self._s0 = None, start
    self._bar = None

  def _rate(self, step: int) -> float | None:
    """Steps per second since the first update (after the compile)."""
    if self._t0 is None or step <= self._s0:
      return None
    return (step - self._s0) / max(time.perf_counter() - self._t0, 1e-9)

  def line(self, step: int, loss: float | None) -> str:
    """The concise non-terminal line: step, loss, images/s, time left."""
    parts = [f"step {step}/{self.total}"]
    if loss is not None:
      parts.append(f"loss {loss:.4f}")
    rate = self._rate(step)
    if rate:
      parts += [
          f"{rate * self.batch_size:.1f} img/s",
          f"{duration((self.total - step) / rate)} left",
      ]
    return "  ".join(parts)

  def update(self, step: int, loss: float | None = None) -> None:
    if self._t0 is None:  # the first step compiled: rates (and the bar) start here
      self._t0, self._s0 = time.perf_counter(), step
      if self.terminal:
        from tqdm import tqdm

        self._bar = tqdm(
            total=self.total,
            initial=step,
            unit="step",
            file=self.stream,
            dynamic_ncols=True,
            desc="training",
        )
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      if loss is not None:
        rate = self._rate(step)
        self._bar.set_postfix_str(
            f"loss {loss:.4f}" + (f", {rate * self.batch_size:.1f} img/s" if rate else ""),
            refresh=False,
        )
    elif loss is not None and (step % self.every == 0 or step == self.total):
      print(self.line(step, loss), file=self.stream, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
