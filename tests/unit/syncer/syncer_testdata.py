"""Shared settings and object builders for the syncer unit tests."""

from __future__ import annotations

from typing import Any

from vcluster_syncer.translate.settings import PodContext, TranslatorSettings

SETTINGS = TranslatorSettings(
    vcluster_name="vc",
    host_namespace="host-ns",
    service_name="vc",
    service_uid="svc-uid",
    workload_service_account="vc-workload-vc",
)
CTX = PodContext(api_service_ip="10.96.0.50")


def pod(name: str = "web", namespace: str = "team", spec: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {},
                     "annotations": annotations or {}},
        "spec": spec if spec is not None else {"containers": [{"name": "c", "image": "busybox"}]},
    }
    if status is not None:
        obj["status"] = status
    return obj


def token_volume(name: str = "kube-api-access-abcde") -> dict[str, Any]:
    """The projected volume the ServiceAccount admission plugin injects."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }
