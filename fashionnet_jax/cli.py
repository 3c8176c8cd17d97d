"""What the command-line tools share: their usage error and an argparse with one-line errors."""
import argparse

from fashionnet_jax.errors import FashionNetError


class UsageError(FashionNetError, ValueError):
  """A command-line mistake: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
  """argparse whose errors are one line (exit 2), without the usage block."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n")
