"""User-facing error types shared by every anyprec package.

Anything raised as an :class:`AnyprecError` is the user's mistake or an environment problem
with a one-line explanation; the CLI prints ``anyprec: error: <message>`` and exits non-zero
instead of showing a traceback. Everything else is a bug in anyprec.
"""


class AnyprecError(Exception):
    """Base class of all user-facing anyprec errors (one-line message, no traceback)."""


class PrecisionError(AnyprecError, ValueError):
    """A weight or activation precision outside the supported range."""


class ShapeError(AnyprecError, ValueError):
    """Arrays whose shapes or dtypes do not fit together or do not fit the build."""


class ModelFileError(AnyprecError):
    """A model or checkpoint file that is missing, corrupt or incompatible."""


class ConfigError(AnyprecError, ValueError):
    """An invalid build configuration."""
