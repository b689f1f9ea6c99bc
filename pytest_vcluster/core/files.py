"""The files the package carries: the chart, the syncer's source, the syncer's contract.

One lookup for all of them: inside the installed package (the wheel puts them there, see pyproject's
``force-include``), else next to the package in a source checkout.
"""

from __future__ import annotations

from pathlib import Path

#: the ``pytest_vcluster`` directory
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def candidates(inside: str, checkout: str | None = None) -> list[Path]:
    """Where a shipped file may be: ``inside`` the installed package (wheel), else ``checkout`` (default: the same
    relative path) next to the package (a source checkout)."""
    return [PACKAGE_DIR / inside, PACKAGE_DIR.parent / (checkout or inside)]


def package_file(inside: str, checkout: str | None = None, *, holding: tuple[str, ...] = ()) -> Path | None:
    """The first of :func:`candidates` that exists and holds every relative path of ``holding``; None when none
    does."""
    for candidate in candidates(inside, checkout):
        if candidate.exists() and all((candidate / name).exists() for name in holding):
            return candidate
    return None


def looked_in(inside: str, checkout: str | None = None) -> str:
    """The candidates as a message lists them."""
    return ", ".join(str(c) for c in candidates(inside, checkout))


#: the chart: ``pytest_vcluster/chart`` in the wheel, ``chart/`` in a checkout
CHART = ("chart", None, ("Chart.yaml",))
#: the syncer's source and Dockerfile: ``pytest_vcluster/_syncer`` in the wheel, ``syncer/`` in a checkout
SYNCER = ("_syncer", "syncer", ("Dockerfile", "vcluster_syncer"))
#: the syncer's contract module, shared with the plugin and the chart
CONTRACT = ("_syncer/vcluster_syncer/contract.py", "syncer/vcluster_syncer/contract.py", ())
