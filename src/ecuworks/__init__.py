"""ecuworks: program, code and enable vehicle ECUs over UDS (DoIP, HSFZ, ISO-TP)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ecuworks")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
