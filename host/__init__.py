"""anyprec host side: protocol framing, the device driver, transports and the CLI."""

try:
    from importlib.metadata import version as _version
    __version__ = _version("anyprec")
except Exception:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
