"""The package's version: written here once (pyproject's hatch version source; chart/Chart.yaml's appVersion
equals it)."""

__version__ = "0.1.0.dev0"
