"""Shared fixtures of the end-to-end tests: they run against the real host from `hack/host up`.

A host that is not up is a failure here, never a skip: CI brings it up before
the tests (hack/test), and a developer runs `hack/host up` once.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import E2E_TIMEOUT, wait_deleted
from kubernetes import client, config

from pytest_vcluster import Host

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "hack" / "host"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the host (marker `disruptive`) run after all others. Before the rest come the modules
    with pytest runs of their own (fixture ``run``: the longest tests, 40-140 s), each module's tests together, so
    that xdist hands them out first and a run does not end on one of them while the other workers idle."""
    nested = {item.nodeid.split("::")[0] for item in items if "run" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: (item.get_closest_marker("disruptive") is not None,
                                 item.nodeid.split("::")[0] not in nested))


@pytest.fixture(scope="session", autouse=True)
def deleted_clusters_are_gone() -> Iterator[None]:
    """The fixtures delete their clusters without waiting (e2e_helpers.delete_later); the session's last teardown
    waits until all their host namespaces are gone, and fails naming those that are not."""
    yield
    left = wait_deleted(timeout=300)
    if left:
        pytest.fail(f"host namespaces of deleted clusters still there after 300 s: {left}")


@pytest.fixture(scope="session")
def host_kubeconfig() -> Path:
    """Path of the host's admin kubeconfig (VCLUSTER_HOST_KUBECONFIG or `hack/host kubeconfig`)."""
    configured = os.environ.get("VCLUSTER_HOST_KUBECONFIG")
    if configured:
        return Path(configured)
    proc = subprocess.run([str(HOST), "kubeconfig"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(f"no host cluster: `hack/host kubeconfig` failed ({proc.stderr.strip()}); run `hack/host up`")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def host_api(host_kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(host_kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def host_core(host_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(host_api)


@pytest.fixture
def run(pytester: pytest.Pytester, host_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run pytest in a subprocess against the real host; returns the RunResult.

    Inner runs get ``--vcluster-host=kubeconfig --vcluster-host-kubeconfig=<host kubeconfig>`` and
    the readiness timeout ``VCLUSTER_E2E_TIMEOUT``; extra options come from ``VCLUSTER_E2E_ARGS``.
    """
    for var in ("KUBECONFIG", "VCLUSTER_HOST", "VCLUSTER_HOST_KUBECONFIG", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    extra = shlex.split(os.environ.get("VCLUSTER_E2E_ARGS", ""))

    def run_pytest(*args: str, timeout: float = 1800) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider",
            "--vcluster-host=kubeconfig",
            f"--vcluster-host-kubeconfig={host_kubeconfig}",
            f"--vcluster-timeout={E2E_TIMEOUT}",
            *extra,
            *args,
            timeout=timeout,
        )

    return run_pytest


@pytest.fixture
def namespace(host_api: client.ApiClient) -> Iterator[str]:
    """A fresh host namespace for one test, deleted afterwards."""
    core = client.CoreV1Api(host_api)
    name = f"e2e-host-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"e2e": "host"})))
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture(scope="module")
def host(host_kubeconfig: Path) -> Iterator[Host]:
    """The host as the library sees it (one per test module)."""
    h = Host.from_kubeconfig(host_kubeconfig)
    yield h
    h.close()
