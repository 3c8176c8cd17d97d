"""The project's own error for user mistakes in a config, shared by every stage."""


class ConfigError(ValueError):
  """A config value that cannot work; the message is one line naming it."""
