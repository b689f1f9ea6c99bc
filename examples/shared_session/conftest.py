"""Fixtures of module scope built on ``vcluster_manager``: one virtual cluster per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from kubernetes import client

from pytest_vcluster import VCluster

if TYPE_CHECKING:
    from pytest_vcluster import VClusterManager


@pytest.fixture(scope="module")
def module_vcluster(vcluster_manager: VClusterManager) -> Iterator[VCluster]:
    """One virtual cluster for all the tests of a module, deleted when the module's last test is done.

    ``vcluster_manager`` is session-scoped, so it can serve fixtures of any scope; ``cluster()`` takes the
    same options as ``@pytest.mark.vcluster(...)``.
    """
    with vcluster_manager.cluster(timeout=240) as vc:
        yield vc


@pytest.fixture(scope="module")
def team_namespace(module_vcluster: VCluster) -> Iterator[str]:
    """A namespace in the module's cluster, created once for the module."""
    core = client.CoreV1Api(module_vcluster.api_client)
    name = "team-a"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"team": "a"})))
    yield name
    # Not needed (the whole cluster goes away next), shown for fixtures that must clean up after themselves.
    core.delete_namespace(name)
