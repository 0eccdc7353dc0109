"""oneinfra: isolated Kubernetes control planes on CRI hypervisors."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("oneinfra")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
