"""Keys of the plugin's state in ``config.stash`` and ``item.stash`` (no module globals)."""

from __future__ import annotations

import pytest

from ..core.settings import Settings
from .manager import Summary, VClusterManager

SETTINGS_KEY = pytest.StashKey[Settings]()
MANAGER_KEY = pytest.StashKey[VClusterManager]()
RUN_ID_KEY = pytest.StashKey[str]()
#: the summary shown by this process: its own, plus the workers' under xdist
SUMMARY_KEY = pytest.StashKey[Summary]()
#: pytest's ``tmp_path_factory`` (set by the ``vcluster_manager`` fixture): where the run's files go
TMP_FACTORY_KEY = pytest.StashKey[pytest.TempPathFactory]()
#: per test item: the reports of its phases ("setup", "call", "teardown")
REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


def item_failed(item: pytest.Item) -> bool:
    """True when the item's setup or call failed (used for ``--vcluster-keep-on-failure``)."""
    reports = item.stash.get(REPORTS_KEY, {})
    return any(r.failed for when, r in reports.items() if when in ("setup", "call"))


def manager_of(config: pytest.Config) -> VClusterManager:
    try:
        return config.stash[MANAGER_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-vcluster is not configured in this process (was the plugin disabled with -p no:vcluster?)"
        ) from None
