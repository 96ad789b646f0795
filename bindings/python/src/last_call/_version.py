"""The package's version, which the native library must match."""

__version__ = "0.1.0"
