"""The template of this folder's tests: a cluster with the Widget operator installed and running.

Overriding the session fixture ``vcluster_template`` is all it takes: ``vcluster_manager.template(...)``
prepares the cluster once per run (under pytest-xdist the first worker prepares it, the others wait for it
and read the same snapshot), takes its snapshot and deletes it. Tests then ask for forks of it with
``@pytest.mark.vcluster(fork="vcluster_template")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from widget_operator import prepare_widget_operator

if TYPE_CHECKING:
    from pytest_vcluster import Snapshot, VClusterManager


@pytest.fixture(scope="session")
def vcluster_template(vcluster_manager: VClusterManager) -> Snapshot:
    return vcluster_manager.template("widget-operator", prepare=prepare_widget_operator, timeout=240)
