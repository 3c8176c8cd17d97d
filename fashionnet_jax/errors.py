"""The project's own errors, and the one boundary every command exits through.

A `FashionNetError` is a user mistake or a bad input (a config value, a data
file, a weight file, a checkpoint, a workdir): its message is one line naming
what and where, and a command prints it and exits with `USER_ERROR_EXIT`.
Anything else keeps its traceback: that is a bug to report.
"""

from __future__ import annotations

import functools
import sys

# A user mistake (argparse and absl use 2 for usage errors too).
USER_ERROR_EXIT = 2
# Preempted (SIGTERM): a checkpoint was saved and the same command resumes the run.
# sysexits' EX_TEMPFAIL, "try again later"; launch/ scripts requeue on it.
PREEMPTED_EXIT = 75


class FashionNetError(Exception):
  """Base of the errors a user can fix; the message is one line."""


class ConfigError(FashionNetError, ValueError):
  """A config value that cannot work; the message is one line naming it."""


class WorkdirError(FashionNetError, OSError):
  """A workdir that cannot be used: not a folder, not writable, locked by another run."""


def one_line(error: BaseException) -> str:
  """The error's message on one line (OS errors name their path)."""
  text = str(error) or type(error).__name__
  return " ".join(text.split())


def exit_on_user_error(command):
  """Decorates a command's main: a FashionNetError prints `error: ...` and exits 2."""

  @functools.wraps(command)
  def wrapper(*args, **kwargs):
    try:
      return command(*args, **kwargs)
    except FashionNetError as e:
      print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
      sys.exit(USER_ERROR_EXIT)

  return wrapper
