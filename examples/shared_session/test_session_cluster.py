"""Tests sharing the session's virtual cluster (``vcluster_session``) without depending on each other.

One cluster for the whole session is the cheapest option. Tests then must not rely on each other's
objects; give each one a namespace of its own, as the ``own_namespace`` fixture below does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from pytest_vcluster import VCluster


@pytest.fixture
def own_namespace(vcluster_session: VCluster) -> Iterator[str]:
    """A fresh namespace in the session's cluster for one test, deleted afterwards."""
    core = client.CoreV1Api(vcluster_session.api_client)
    name = f"test-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.mark.parametrize("color", ["red", "blue"])
def test_same_names_in_own_namespaces(vcluster_session: VCluster, own_namespace: str, color: str) -> None:
    core = client.CoreV1Api(vcluster_session.api_client)
    core.create_namespaced_config_map(
        own_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"color": color})
    )
    # Only this test's object is in this test's namespace, although the cluster is shared.
    (settings,) = core.list_namespaced_config_map(own_namespace, field_selector="metadata.name=settings").items
    assert settings.data == {"color": color}


def test_cluster_wide_objects_need_unique_names(vcluster_session: VCluster) -> None:
    """Cluster-scoped objects (here a ClusterRole) are shared by every test on the session cluster."""
    rbac = client.RbacAuthorizationV1Api(vcluster_session.api_client)
    name = f"reader-{uuid.uuid4().hex[:8]}"
    rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=name),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
        )
    )
    try:
        assert rbac.read_cluster_role(name).rules[0].verbs == ["get", "list"]
    finally:
        rbac.delete_cluster_role(name)
