"""Installing the Widget operator of ``examples/operator_crd`` as an in-cluster Deployment, and checking it works.

``prepare_widget_operator(vc)`` is what the template of this example runs once per test run (see
``conftest.py``); ``hack/bench`` imports it too, to time a cold cluster plus this install against a fork
of the template. The CRD and the RBAC are those of ``examples/operator_crd``, used by path (not copied);
the controller is its standard-library twin ``widget_controller_pod.py``, run by a stock Python image: the one
the plugin builds its syncer image from (``VCLUSTER_SYNCER_BASE_IMAGE``, default ``python:3.11-slim-bookworm``),
which ``examples/conftest.py`` loads into the host's nodes when the local docker has it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from pytest_vcluster import VCluster

HERE = Path(__file__).resolve().parent
OPERATOR_CRD = HERE.parent / "operator_crd"
CRD_MANIFEST = OPERATOR_CRD / "manifests" / "crd.yaml"
RBAC_MANIFEST = OPERATOR_CRD / "manifests" / "rbac.yaml"
CONTROLLER_SCRIPT = HERE / "widget_controller_pod.py"
DEPLOYMENT_MANIFEST = HERE / "manifests" / "controller.yaml"

GROUP = "examples.pytest-vcluster.io"
VERSION = "v1alpha1"
PLURAL = "widgets"
CRD_NAME = f"{PLURAL}.{GROUP}"
NAMESPACE = "widget-system"
DEPLOYMENT = "widget-controller"
SCRIPT_CONFIGMAP = "widget-controller-script"
SELECTOR = "app.kubernetes.io/name=widget-controller"
#: the Widget the template makes (its round-trip proves the operator works before the snapshot)
SEED = "seed"
#: generous: the machine running the examples may be slow and shared
TIMEOUT = 180.0
#: the controller's image: a stock Python (standard library only)
PYTHON_IMAGE = os.environ.get("VCLUSTER_SYNCER_BASE_IMAGE") or "python:3.11-slim-bookworm"


def widget(name: str, color: str, size: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"color": color}
    if size is not None:
        spec["size"] = size
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def install(vc: VCluster, timeout: float = TIMEOUT) -> None:
    """The CRD and RBAC of examples/operator_crd, then the controller as Deployment widget-system/widget-controller
    (its script in a ConfigMap). Returns once Widgets are served; the Deployment may still be starting."""
    vc.apply(CRD_MANIFEST, timeout=timeout)  # returns once Widgets are served
    vc.apply(RBAC_MANIFEST)
    deployment = yaml.safe_load(DEPLOYMENT_MANIFEST.read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["image"] = PYTHON_IMAGE
    script = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": SCRIPT_CONFIGMAP},
              "data": {"widget_controller.py": CONTROLLER_SCRIPT.read_text()}}
    vc.apply([script, deployment], namespace=NAMESPACE)


def wait_operator(vc: VCluster, timeout: float = TIMEOUT) -> client.V1Deployment:
    """Wait until Deployment widget-controller is available *and* its pod runs Ready on the host, in this
    cluster's own host namespace.

    The second half matters in a fork: the fork starts with the template's Deployment and ReplicaSet, status
    included ("available"), before its ReplicaSet controller has started the pod again in the fork's own host
    namespace; the host pod being Ready is what says the controller really runs.
    """
    apps = client.AppsV1Api(vc.api_client)
    core = client.CoreV1Api(vc.api_client)
    host_core = vc.host.core_v1()

    def host_pod_ready(pod: client.V1Pod) -> bool:
        host_pod = host_core.read_namespaced_pod(vc.host_name(pod), vc.host_namespace)
        return host_pod.status.phase == "Running" and any(
            c.type == "Ready" and c.status == "True" for c in host_pod.status.conditions or [])

    def available() -> client.V1Deployment | None:
        dep = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
        status = dep.status
        if (status.observed_generation or 0) < (dep.metadata.generation or 0) or not status.available_replicas:
            return None
        pods = [p for p in core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items
                if not p.metadata.deletion_timestamp]
        return dep if pods and all(host_pod_ready(p) for p in pods) else None

    return vc.wait(f"Deployment {NAMESPACE}/{DEPLOYMENT} to be available, its pod Ready on the host", available,
                   timeout=timeout)


def widget_round_trip(vc: VCluster, name: str, color: str = "blue", size: int = 2,
                      timeout: float = TIMEOUT) -> dict[str, Any]:
    """Create Widget ``default/<name>`` and wait until the controller has made ConfigMap ``widget-<name>`` and
    written the Widget's status; returns the ConfigMap (a dict, as ``vc.wait_for`` returns objects)."""
    vc.apply(widget(name, color, size))
    cm = vc.wait_for(f"configmap/widget-{name}", lambda cm: cm["data"], timeout=timeout)
    vc.wait_for(f"widget/{name}", lambda w: w["status"]["configMap"] == f"widget-{name}", timeout=timeout)
    return cm


def prepare_widget_operator(vc: VCluster) -> dict[str, float]:
    """The template's preparation: install the operator, wait until it runs, and check one Widget round-trip
    (Widget ``seed``, which every fork then has too). Returns how long each step took, in seconds
    (``install``, ``operator``: until the Deployment is available, ``widget``: the round-trip)."""
    t0 = time.monotonic()
    install(vc)
    t1 = time.monotonic()
    wait_operator(vc)
    t2 = time.monotonic()
    widget_round_trip(vc, SEED, color="green", size=1)
    t3 = time.monotonic()
    return {"install": t1 - t0, "operator": t2 - t1, "widget": t3 - t2}
