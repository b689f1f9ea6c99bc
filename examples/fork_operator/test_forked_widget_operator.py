"""Every test gets a fork of a prepared cluster: the Widget CRD and its operator are already there and running.

The template (``conftest.py``) installs the operator once per run; each test below starts from a copy of
it, in a virtual cluster of its own. What one test creates, no other test sees.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from widget_operator import (
    CRD_NAME,
    GROUP,
    NAMESPACE,
    PLURAL,
    SEED,
    TIMEOUT,
    VERSION,
    wait_operator,
    widget_round_trip,
)

from pytest_vcluster import Host, VCluster

#: one fork per name; each makes a Widget of that name and must not see the others'
NAMES = ("alpha", "bravo", "charlie", "delta", "echo")


@pytest.mark.vcluster(fork="vcluster_template")
@pytest.mark.parametrize("name", NAMES)
def test_fork_runs_the_operator_and_sees_only_its_own_widgets(vcluster: VCluster, vcluster_host: Host,
                                                              name: str) -> None:
    custom = client.CustomObjectsApi(vcluster.api_client)
    core = client.CoreV1Api(vcluster.api_client)

    # The template's objects are in the fork: the CRD, the operator's namespace and Deployment, the seed Widget.
    assert client.ApiextensionsV1Api(vcluster.api_client).read_custom_resource_definition(CRD_NAME)
    assert custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, SEED)["status"]["configMap"] == \
        f"widget-{SEED}"

    # The operator's pod starts again, in this fork's own host namespace (the template's cluster is gone).
    wait_operator(vcluster, timeout=TIMEOUT)
    controller_pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=widget-controller")
    host_pod = vcluster_host.core_v1().read_namespaced_pod(vcluster.host_name(controller_pods.items[0]),
                                                          vcluster.host_namespace)
    assert host_pod.status.phase == "Running"

    # It reconciles a Widget made in this fork.
    cm = widget_round_trip(vcluster, name, color="red", size=len(name), timeout=TIMEOUT)
    assert cm["data"] == {"color": "red", "size": str(len(name))}
    assert cm["metadata"]["ownerReferences"][0]["name"] == name

    # Nothing of the other forks is here: only the template's Widget and this test's own.
    widgets = {w["metadata"]["name"] for w in custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]}
    configmaps = {cm.metadata.name for cm in core.list_config_map_for_all_namespaces().items
                  if cm.metadata.name.startswith("widget-") and cm.metadata.name != "widget-controller-script"}
    others = set(NAMES) - {name}
    assert not others & widgets, f"Widgets of other forks are visible: {sorted(others & widgets)}"
    assert not {f"widget-{n}" for n in others} & configmaps
    assert widgets == {SEED, name}
    assert configmaps == {f"widget-{SEED}", f"widget-{name}"}
