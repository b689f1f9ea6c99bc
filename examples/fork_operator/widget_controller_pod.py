"""The Widget controller of ``examples/operator_crd`` for a pod, in Python's standard library only.

Same reconcile as ``operator_crd/widget_controller.py`` (a ConfigMap ``widget-<name>`` with the Widget's
spec, owned by the Widget; the Widget's ``status.configMap`` names it), written against the API over
HTTPS with the pod's ServiceAccount token, so it runs in the stock ``python:3.11`` image, which has no
``kubernetes`` package. It lists all Widgets every second (a level-triggered loop; the operator_crd
version watches). Run in a pod only (in-cluster credentials).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any

GROUP, VERSION, PLURAL = "examples.pytest-vcluster.io", "v1alpha1", "widgets"
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
BASE = f"https://{os.environ.get('KUBERNETES_SERVICE_HOST')}:{os.environ.get('KUBERNETES_SERVICE_PORT')}"
TLS = ssl.create_default_context(cafile=f"{SA}/ca.crt") if os.path.exists(f"{SA}/ca.crt") else None


def call(method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
    with open(f"{SA}/token") as fh:  # re-read: projected tokens rotate
        token = fh.read()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type, "Accept": "application/json"})
    with urllib.request.urlopen(request, context=TLS, timeout=15) as response:
        return json.load(response)


def reconcile(widget: dict[str, Any]) -> None:
    meta = widget["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    if meta.get("deletionTimestamp"):
        return
    spec = widget.get("spec") or {}
    cm_name = f"widget-{name}"
    body = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": cm_name, "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "widget-controller", "widget": name},
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "name": name,
                                 "uid": meta["uid"], "controller": True}],
        },
        "data": {"color": str(spec.get("color", "")), "size": str(spec.get("size", 1))},
    }
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        call("POST", path, body)
        print(f"created configmap {namespace}/{cm_name}", flush=True)
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
        call("PUT", f"{path}/{cm_name}", body)
    status = {"configMap": cm_name, "observedGeneration": meta.get("generation", 0)}
    if (widget.get("status") or {}) != status:
        call("PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
             {"status": status}, content_type="application/merge-patch+json")


def main() -> int:
    print("started", flush=True)
    while True:
        try:
            for widget in call("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}").get("items", []):
                try:
                    reconcile(widget)
                except urllib.error.HTTPError as exc:
                    print(f"reconcile {widget['metadata'].get('name')}: HTTP {exc.code}", flush=True)
        except (OSError, urllib.error.URLError, ValueError) as exc:  # a controller keeps going
            print(f"list failed ({exc}); retrying", flush=True)
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
