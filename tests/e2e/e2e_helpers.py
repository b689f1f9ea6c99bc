"""Helpers shared by the end-to-end tests: polling with a clear failure, unique names, gone-checks."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import urllib3
from kubernetes import client

#: readiness timeout of the clusters of inner pytest runs (conftest's ``run``)
E2E_TIMEOUT = os.environ.get("VCLUSTER_E2E_TIMEOUT", "300")


def wait(what: str, check: Callable[[], Any], timeout: float = 180, every: float = 0.5,
         diagnose: Callable[[], str] | None = None) -> Any:
    """Polls check() until it returns something truthy and returns that (the package's one poll loop,
    ``pytest_vcluster.core.wait.poll``); every API error and dropped connection counts as "not yet" (an e2e
    test waits through a cluster's warm-up, where 401s and 403s come and go). On timeout the test fails
    naming what was awaited, the last value or error seen, and what diagnose() reports."""
    from pytest_vcluster.core.wait import Deadline, Expired, fixed, poll

    def not_yet(exc: BaseException) -> bool:
        return isinstance(exc, (client.ApiException, urllib3.exceptions.HTTPError, OSError))

    try:
        return poll(check, Deadline(timeout), pause=fixed(every), not_yet=not_yet)
    except Expired as exc:
        seen = ""
        if diagnose:
            try:
                seen = f"\n{diagnose()}"
            except Exception as e:  # noqa: BLE001 - diagnostics must not hide the timeout
                seen = f"\n(no diagnostics: {e})"
        pytest.fail(f"timed out after {timeout}s waiting for {what}; last seen: {exc.last}{seen}")


def kubectl(vc: Any, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``kubectl`` (from PATH) against the virtual cluster ``vc``; output captured as text."""
    return subprocess.run(["kubectl", "--kubeconfig", str(vc.kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=timeout)


def http_get(url: str, timeout: float = 60) -> str:
    """GET with retries until it answers (a forward or a hostPort takes a moment to listen)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def suffix() -> str:
    """A short random suffix for names that must not collide across runs."""
    return uuid.uuid4().hex[:6]


def gone(read: Callable[[], Any]) -> bool:
    """True when read() answers 404; other API errors propagate."""
    try:
        read()
    except client.ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    """True while host namespace ``name`` exists (terminating included)."""
    return not gone(lambda: core.read_namespace(name))


def create_vcluster(host: Any, name: str, *, labels: dict[str, str], timeout: float, **kw: Any) -> Any:
    """``VCluster.create`` for an e2e test; prints how long the cluster took to be ready, phase by phase."""
    from pytest_vcluster import VCluster

    vc = VCluster.create(host, name=name, labels=labels, timeout=timeout, **kw)
    settings = f" {kw['set']}" if kw.get("set") else ""
    print(f"virtual cluster {name}{settings}: ready in {vc.setup_seconds:.1f}s "
          f"({', '.join(f'{k} {v:.1f}s' for k, v in vc.phase_seconds.items())})")
    return vc


#: clusters deleted without waiting for their host namespaces (``delete_later``); conftest's session fixture
#: waits for them at the end of the worker's session
DELETED: list[Any] = []


def delete_later(vc: Any) -> None:
    """Deletes ``vc`` without waiting until its host namespace is gone (the host ends its pods' grace periods in
    the background, while the worker runs its next test); the end of the session waits for it
    (``wait_deleted``), so a namespace that never goes still fails the run."""
    vc.delete(wait=False)
    DELETED.append(vc)


def wait_deleted(timeout: float) -> list[str]:
    """Waits until the host namespace of every cluster given to ``delete_later`` is gone; returns those left."""
    from pytest_vcluster.core.cleanup import wait_namespaces_gone

    left: list[str] = []
    for host in {id(vc.host): vc.host for vc in DELETED}.values():
        names = [vc.host_namespace for vc in DELETED if vc.host is host]
        left += wait_namespaces_gone(host.core_v1(), names, timeout)
    DELETED.clear()
    return left


@contextmanager
def created_vcluster(host: Any, name: str, *, labels: dict[str, str], timeout: float, **kw: Any) -> Iterator[Any]:
    """``create_vcluster`` for a fixture: yields the cluster, then deletes it (``delete_later``)."""
    vc = create_vcluster(host, name, labels=labels, timeout=timeout, **kw)
    try:
        yield vc
    finally:
        delete_later(vc)


def events_text(core: client.CoreV1Api, ns: str) -> str:
    """The events of a namespace, one line each (for failure messages)."""
    return "\n".join(f"{e.type} {e.involved_object.kind}/{e.involved_object.name}: {e.reason}: {e.message}"
                     for e in core.list_namespaced_event(ns).items)


def widget_crd(group: str) -> client.V1CustomResourceDefinition:
    """CRD ``widgets.<group>`` (namespaced, kind Widget, v1, any fields): the custom resource of the e2e tests."""
    return client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"widgets.{group}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group, scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural="widgets", singular="widget", kind="Widget"),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=client.V1JSONSchemaProps(
                    type="object", x_kubernetes_preserve_unknown_fields=True)))]))


def crd_established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = ext.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


class Sides:
    """A virtual cluster seen from both sides: its API (``v*``) and the host (``h*``, namespace ``hns``).

    The e2e files add what they need in a subclass (their ``Env``)."""

    def __init__(self, vc: Any, host_api: client.ApiClient) -> None:
        self.vc = vc
        self.release = vc.release
        self.hns = vc.host_namespace
        self.vcore = client.CoreV1Api(vc.api_client)
        self.vapps = client.AppsV1Api(vc.api_client)
        self.vstorage = client.StorageV1Api(vc.api_client)
        self.vnet = client.NetworkingV1Api(vc.api_client)
        self.vrbac = client.RbacAuthorizationV1Api(vc.api_client)
        self.hcore = client.CoreV1Api(host_api)
        self.hstorage = client.StorageV1Api(host_api)
        self.hnet = client.NetworkingV1Api(host_api)
        self.hrbac = client.RbacAuthorizationV1Api(host_api)

    def namespace(self, prefix: str) -> str:
        """A fresh virtual namespace ``<prefix>-<suffix>``."""
        name = f"{prefix}-{suffix()}"
        self.vcore.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return name

    def diagnose(self, ns: str | None = None) -> Callable[[], str]:
        """What to print when a wait fails: the cluster's diagnostics, host events, and the virtual pods and
        events of ``ns``."""
        def run() -> str:
            out = [self.vc.diagnostics(), f"host events in {self.hns}:", events_text(self.hcore, self.hns)]
            if ns:
                for p in self.vcore.list_namespaced_pod(ns).items:
                    out.append(f"virtual pod {ns}/{p.metadata.name}: {p.status.phase} node={p.spec.node_name} "
                               f"{p.status.container_statuses}")
                out.append(f"virtual events in {ns}:\n{events_text(self.vcore, ns)}")
            return "\n".join(out)
        return run

    def run_to_completion(self, ns: str, body: client.V1Pod, timeout: float = 240) -> str:
        """Runs a pod (restartPolicy Never, container ``main``) until it finishes; its logs through the *virtual*
        API. Must succeed."""
        name = body.metadata.name
        self.vcore.create_namespaced_pod(ns, body)

        def finished() -> str | None:
            phase = self.vcore.read_namespaced_pod(name, ns).status.phase
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait(f"virtual pod {ns}/{name} finished", finished, timeout=timeout, every=2,
                     diagnose=self.diagnose(ns))
        logs = wait(f"logs of virtual pod {ns}/{name}",
                    lambda: self.vcore.read_namespaced_pod_log(name, ns, container="main") or "(empty)", timeout=60)
        assert phase == "Succeeded", f"pod {ns}/{name} {phase}; output:\n{logs}"
        return logs
