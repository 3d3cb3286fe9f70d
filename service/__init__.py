"""The serving side: model bundles in, HTTP answers out (no torch, no training code)."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The one place the version is read: pyproject.toml, through the installed package's metadata.
    __version__ = version("lstm-service")
except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
    __version__ = "0+unknown"
