"""A tiny Widget controller: for every Widget it keeps a ConfigMap ``widget-<name>`` next to it.

The ConfigMap holds the Widget's spec, is owned by the Widget (so Kubernetes' garbage collector
deletes it with the Widget), and the Widget's ``status.configMap`` names it.

Run it against any cluster::

    KUBECONFIG=/path/to/kubeconfig python widget_controller.py     # or in a pod (in-cluster config)

It needs the rights of ``manifests/rbac.yaml`` and the CRD of ``manifests/crd.yaml``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

GROUP = "examples.pytest-vcluster.io"
VERSION = "v1alpha1"
PLURAL = "widgets"

log = logging.getLogger("widget-controller")


def configmap_name(widget_name: str) -> str:
    return f"widget-{widget_name}"


class WidgetController:
    """Level-triggered reconcile of every Widget: list, then watch from the list's resourceVersion."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.stopped = threading.Event()
        self._watch: watch.Watch | None = None

    def stop(self) -> None:
        self.stopped.set()
        if self._watch is not None:
            self._watch.stop()

    def reconcile(self, widget: dict[str, Any]) -> None:
        meta = widget["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        if meta.get("deletionTimestamp"):
            return
        spec = widget.get("spec") or {}
        cm_name = configmap_name(name)
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=cm_name,
                namespace=namespace,
                labels={"app.kubernetes.io/managed-by": "widget-controller", "widget": name},
                owner_references=[
                    client.V1OwnerReference(
                        api_version=f"{GROUP}/{VERSION}", kind="Widget", name=name, uid=meta["uid"], controller=True
                    )
                ],
            ),
            data={"color": str(spec.get("color", "")), "size": str(spec.get("size", 1))},
        )
        try:
            self.core.create_namespaced_config_map(namespace, body)
            log.info("created configmap %s/%s", namespace, cm_name)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_config_map(cm_name, namespace, body)
            log.info("updated configmap %s/%s", namespace, cm_name)
        status = {"configMap": cm_name, "observedGeneration": meta.get("generation", 0)}
        if (widget.get("status") or {}) != status:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )

    def _safe_reconcile(self, widget: dict[str, Any]) -> None:
        try:
            self.reconcile(widget)
        except ApiException as exc:
            log.warning(
                "reconcile %s/%s: HTTP %s %s",
                widget["metadata"].get("namespace"),
                widget["metadata"].get("name"),
                exc.status,
                exc.reason,
            )

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                listing = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
                for widget in listing.get("items", []):
                    self._safe_reconcile(widget)
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    PLURAL,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._safe_reconcile(event["object"])
            except Exception as exc:  # noqa: BLE001 - a controller keeps going: relist after a short pause
                if not self.stopped.is_set():
                    log.warning("watch interrupted (%s); relisting", exc)
                    time.sleep(1)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config()
    else:
        config.load_incluster_config()
    controller = WidgetController(client.ApiClient())

    def on_sigterm(signum: int, frame: object) -> None:
        controller.stop()
        raise SystemExit(0)  # leaves a blocking watch read at once

    signal.signal(signal.SIGTERM, on_sigterm)
    log.info("started")
    controller.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
