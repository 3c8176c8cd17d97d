"""What the command-line tools share: their usage error, an argparse with one-line errors
and defaults in --help, absl flag parsing whose mistakes are one line too, and --verbose
(console: quiet by default)."""

import argparse
import re
import sys

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.errors import USER_ERROR_EXIT, ConfigError, FashionNetError, one_line


class UsageError(FashionNetError, ValueError):
  """A command-line mistake: one line on stderr, exit status 2."""


# --verbose of every command (console.set_verbose).
VERBOSE_HELP = (
    "also show the libraries' own messages, quiet by default (TensorFlow's C++ "
    "banners, TFDS's build wording and progress bars, Orbax's read-only warnings)"
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """--help names each option's default, unless its help already does or it has none."""

  def _get_help_string(self, action):
    text = action.help or ""
    if (
        "default" in text
        or not action.option_strings
        or action.default in (None, False, argparse.SUPPRESS)
    ):
      return text
    return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
  """argparse whose errors are one line (exit 2), without the usage block, and whose --help
  shows every default (HelpFormatter)."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault("formatter_class", HelpFormatter)
    super().__init__(*args, **kwargs)

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n")


def add_verbose_argument(parser) -> None:
  """--verbose: the libraries' own messages back (console.set_verbose)."""
  parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)


# The absl commands define `flags.DEFINE_bool("verbose", False, VERBOSE_FLAG_HELP)` themselves
# (so that their --help lists it); parse_absl_flags applies it.
VERBOSE_FLAG_HELP = VERBOSE_HELP[0].upper() + VERBOSE_HELP[1:] + "; absl's -v 1 does too."


def add_model_arguments(parser) -> None:
  """--workdir RUN | --checkpoint RUN/{checkpoints,best}/STEP: the trained model a command reads."""
  model = parser.add_mutually_exclusive_group(required=True)
  model.add_argument(
      "--workdir",
      help="training run folder: its model, the step chosen on "
      "validation (best/) when the run selects one, else the newest checkpoint",
  )
  model.add_argument("--checkpoint", help="one step: WORKDIR/checkpoints/STEP or WORKDIR/best/STEP")


def parse_absl_flags(argv, flag_values=None):
  """absl's flag parsing for `app.run(..., flags_parser=parse_absl_flags)`: a bad flag or
  a --config.FIELD override the config lacks is one line and exit 2, not a traceback.

  `flag_values`: the FlagValues to parse into (default the global `flags.FLAGS`;
  the benchmarks define their own). Returns the arguments left over.
  """
  from absl import flags, logging

  values = flags.FLAGS if flag_values is None else flag_values
  try:
    left = values(argv)
    if "verbose" in values:  # the command's --verbose (VERBOSE_FLAG_HELP)
      console.set_verbose(values.verbose or logging.get_verbosity() >= logging.DEBUG)
    return left
  except flags.Error as e:
    message = one_line(e)
  except (AttributeError, KeyError) as e:  # ml_collections: an unknown --config.FIELD
    field = one_line(e).strip("\"'")
    named = [
        a.split("=")[0]
        for a in argv[1:]
        if a.startswith("--") and field in a.split("=")[0].split(".")[1:]
    ]
    message = (
        f"{named[0] if named else '--config.' + field}: the config has no field "
        f"{field!r} (check the spelling against the config file)"
    )
  except (TypeError, ValueError) as e:  # ... or a value of the wrong type
    message = f"a --config.FIELD override does not fit the config: {one_line(e)}"
  except OSError as e:  # overrides load the config file while parsing
    message = _unloadable("config", e)
  print(f"error: {message}", file=sys.stderr)
  sys.exit(USER_ERROR_EXIT)


def benchmark_flag_values(argv):
  """A FlagValues of its own with the benchmarks' common flags: --config (with its
  --config.x=y overrides) and --batch.

  config_flags finds the --config.x=y overrides in the argv it is given when the
  flag is defined, so each main(argv) defines them afresh: tests call main()
  in-process, next to modules (fashionnet_jax.main) that define --config globally.
  """
  from absl import flags
  from ml_collections import config_flags

  fv = flags.FlagValues()
  config_flags.DEFINE_config_file(
      "config",
      "configs/default.py",
      "Config file (configs/*.py).",
      flag_values=fv,
      sys_argv=list(argv),
  )
  flags.DEFINE_integer("batch", None, "Global batch size (default: the config's).", flag_values=fv)
  return fv


def config_flag(name: str = "config", flag_values=None):
  """The config of an ml_collections config-file flag; a file that does not load is
  a ConfigError naming it (the flag loads lazily, so the error surfaces here).
  `flag_values` as in `parse_absl_flags`."""
  from absl import flags

  try:
    config = getattr(flags.FLAGS if flag_values is None else flag_values, name)
    config.keys()  # a file that failed to load raises on first use
    return config
  except OSError as e:
    raise ConfigError(_unloadable(name, e)) from None


def _unloadable(name: str, error: OSError) -> str:
  """One line for a config file that did not load, with the file's own error if that was it."""
  causes = [error] + ([error.__cause__] if error.__cause__ else [])
  reasons = [re.search(r"\[Errno \d+\] (.*)", one_line(e)) for e in causes]
  reason = next((r.group(1) for r in reasons if r), one_line(error)[-300:])
  return f"--{name}: cannot load the config: {reason}"
