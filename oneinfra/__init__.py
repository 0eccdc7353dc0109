"""oneinfra: isolated Kubernetes control planes on CRI hypervisors."""

# The one place the version is written (pyproject.toml reads it from here):
# looking it up in the installed metadata cost every CLI run ~15 ms.
__version__ = "0.1.0"
