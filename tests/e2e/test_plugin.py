"""End-to-end tests of the pytest plugin against the real host cluster (``hack/host up``).

Each test runs a small test file in a pytest subprocess (the ``run`` fixture of conftest.py) with
``--vcluster-host=kubeconfig --vcluster-host-kubeconfig=<host kubeconfig>``. ``helm`` must be on PATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from e2e_helpers import E2E_TIMEOUT as TIMEOUT  # noqa: E402
from e2e_helpers import namespace_exists  # noqa: E402

pytestmark = pytest.mark.e2e


def test_vcluster_gives_working_isolated_cluster_and_cleans_up(pytester: pytest.Pytester, run: Any,
                                                               host_core: Any) -> None:
    pytester.makepyfile(
        """
        import json
        import os
        import subprocess

        from kubernetes import client


        def test_objects(vcluster):
            core = client.CoreV1Api(vcluster.api_client)
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
            core.create_namespaced_config_map(
                "team-a", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"k": "v"})
            )
            assert core.read_namespaced_config_map("cfg", "team-a").data == {"k": "v"}
            assert core.read_namespaced_service_account("default", "default")
            # the kubeconfig works for tools in subprocesses
            out = subprocess.run(
                ["kubectl", "--kubeconfig", str(vcluster.kubeconfig_path), "get", "configmap", "cfg",
                 "-n", "team-a", "-o", "json"],
                capture_output=True, text=True, timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["data"] == {"k": "v"}
            assert vcluster.host_namespace != "team-a"
            with open(os.path.join(os.path.dirname(__file__), "namespaces.txt"), "a") as fh:
                fh.write(vcluster.host_namespace + "\\n")


        def test_fresh_cluster_per_test(vcluster):
            core = client.CoreV1Api(vcluster.api_client)
            names = [ns.metadata.name for ns in core.list_namespace().items]
            assert "team-a" not in names
            with open(os.path.join(os.path.dirname(__file__), "namespaces.txt"), "a") as fh:
                fh.write(vcluster.host_namespace + "\\n")
        """
    )
    result = run("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["vcluster: host=kubeconfig, kubeconfig * (context *, server *), chart * version *, "
                                 "timeout *"])
    result.stdout.fnmatch_lines(["*- vcluster -*", "host: kubeconfig https://* (Kubernetes v*)",
                                 "setup and teardown per cluster:"])
    result.stdout.no_fnmatch_line("*leaked*")
    # with recycling (the default) the second test may get the first one's cluster, reset: team-a is gone
    result.stdout.fnmatch_lines(["recycling: * cluster(s) reset and handed on, *, 0 deleted instead"])
    namespaces = (pytester.path / "namespaces.txt").read_text().split()
    assert len(namespaces) == 2
    for ns in namespaces:
        assert not namespace_exists(host_core, ns), f"host namespace {ns} still exists after the run"


def test_host_name_matches_the_syncer(pytester: pytest.Pytester, run: Any) -> None:
    pytester.makepyfile(
        """
        import time

        from kubernetes import client


        def test_service_is_synced(vcluster, vcluster_host):
            core = client.CoreV1Api(vcluster.api_client)
            core.create_namespaced_service("default", client.V1Service(
                metadata=client.V1ObjectMeta(name="web"),
                spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": "web"}),
            ))
            host_core = client.CoreV1Api(vcluster_host.api_client)
            expected = vcluster.host_name("Service", "web", "default")
            assert expected == f"web-x-default-x-{vcluster.name}"
            deadline = time.monotonic() + 60
            while True:
                names = [s.metadata.name for s in host_core.list_namespaced_service(vcluster.host_namespace).items]
                if expected in names:
                    break
                assert time.monotonic() < deadline, f"{expected} not among host services {names}"
                time.sleep(1)
        """
    )
    run().assert_outcomes(passed=1)


def test_xdist_two_workers(pytester: pytest.Pytester, run: Any, host_core: Any) -> None:
    pytester.makepyfile(
        """
        import os

        import pytest
        from kubernetes import client


        @pytest.mark.parametrize("i", range(4))
        def test_each(vcluster, i, worker_id):
            client.CoreV1Api(vcluster.api_client).list_namespace()
            with open(os.path.join(os.path.dirname(__file__), f"ns-{i}.txt"), "w") as fh:
                fh.write(f"{vcluster.host_namespace} {worker_id}")


        def test_session(vcluster_session):
            client.CoreV1Api(vcluster_session.api_client).list_namespace()
        """
    )
    result = run("-n", "2", "--vcluster-recycle=no")  # a cluster per test (recycling under xdist: test_recycle.py)
    result.assert_outcomes(passed=5)
    entries = [(pytester.path / f"ns-{i}.txt").read_text().split() for i in range(4)]
    names = [name for name, _ in entries]
    assert len(set(names)) == 4
    assert {worker for _, worker in entries} <= {"gw0", "gw1"}
    run_ids = {name.split("-")[1] for name in names}
    assert len(run_ids) == 1, f"workers of one run must share the run id: {names}"
    result.stdout.fnmatch_lines(["*- vcluster -*"])
    for name in names:
        assert not namespace_exists(host_core, name)


def test_factory_and_manager(pytester: pytest.Pytester, run: Any) -> None:
    pytester.makepyfile(
        """
        import pytest
        from kubernetes import client


        @pytest.fixture(scope="module")
        def shared(vcluster_manager):
            with vcluster_manager.cluster(values={"sync": {"toHost": {"configMaps": {"all": True}}}}) as vc:
                yield vc


        def test_two_isolated(vcluster_factory):
            a, b = vcluster_factory(), vcluster_factory()
            assert a.host_namespace != b.host_namespace
            client.CoreV1Api(a.api_client).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name="only-in-a")))
            names = [n.metadata.name for n in client.CoreV1Api(b.api_client).list_namespace().items]
            assert "only-in-a" not in names


        def test_module_cluster(shared):
            client.CoreV1Api(shared.api_client).list_namespace()
        """
    )
    run().assert_outcomes(passed=2)


def test_failing_start_fails_setup_with_what_was_awaited(pytester: pytest.Pytester, run: Any,
                                                          host_core: Any) -> None:
    pytester.makepyfile(
        """
        def test_never_runs(vcluster):
            raise AssertionError("the cluster cannot be ready")
        """
    )
    # a pod no node can take stays Pending (a missing image would fail at once, not at the timeout)
    result = run("--vcluster-set", "syncer.resources.requests.cpu=1000", "--vcluster-timeout=20")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "virtual cluster vc-* was not ready within 20s: waited *s for pod vc-*-0 in host namespace vc-* to be Ready",
        "last state: phase Pending*",
    ])
    result.stdout.fnmatch_lines(["events in host namespace vc-*:", "*FailedScheduling*Insufficient cpu*"])
    result.stdout.no_fnmatch_line("*the cluster cannot be ready*")
    result.stdout.no_fnmatch_line("*leaked*")


def test_keep_on_failure_keeps_and_explains(pytester: pytest.Pytester, run: Any, host_core: Any) -> None:
    pytester.makepyfile(
        """
        import os


        def test_fails(vcluster):
            with open(os.path.join(os.path.dirname(__file__), "kept.txt"), "w") as fh:
                fh.write(vcluster.host_namespace)
            assert False, "on purpose"
        """
    )
    result = run("--vcluster-keep-on-failure")
    result.assert_outcomes(failed=1)
    namespace = (pytester.path / "kept.txt").read_text().strip()
    try:
        result.stdout.fnmatch_lines([
            f"*- vcluster {namespace} -*",
            f"kept cluster {namespace} (test *test_fails) in host namespace {namespace}:",
            f"  1. kubectl --kubeconfig * -n {namespace} port-forward pod/{namespace}-0 8443:6443",
            "  2. kubectl --kubeconfig *.kept.kubeconfig get pods -A",
        ])
        assert namespace_exists(host_core, namespace)
    finally:
        host_core.delete_namespace(namespace)


def test_bad_values_from_helm_are_reported(pytester: pytest.Pytester, run: Any) -> None:
    pytester.makepyfile("def test_a(vcluster): pass")
    result = run("--vcluster-set", "no.such.key=1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["helm install of release vc-* (chart *) into namespace vc-* failed: *"])


def test_junit_properties(pytester: pytest.Pytester, run: Any) -> None:
    pytester.makepyfile("def test_a(vcluster): pass")
    xml = pytester.path / "junit.xml"
    run(f"--junitxml={xml}").assert_outcomes(passed=1)
    text = xml.read_text()
    assert 'name="vcluster_setup_seconds"' in text
    assert 'name="vcluster_teardown_seconds"' in text


def test_killed_run_is_cleaned_up_by_the_next_run_but_live_runs_are_not(
    pytester: pytest.Pytester, run: Any, host_core: Any, host_kubeconfig: Path
) -> None:
    """A run killed with SIGKILL leaves its namespace; the next run removes it, and only it."""
    import signal
    import sys
    import time

    from kubernetes import client

    from pytest_vcluster.core import labels as _labels

    marker = pytester.path / "ns.txt"
    pytester.makepyfile(
        test_killed=f"""
        import time

        def test_hangs(vcluster):
            with open({str(marker)!r}, "w") as fh:
                fh.write(vcluster.host_namespace)
            time.sleep(900)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VCLUSTER_HOST", "PYTEST_ADDOPTS")}
    env["VCLUSTER_HOST_KUBECONFIG"] = str(host_kubeconfig)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--vcluster-host=kubeconfig",
         f"--vcluster-timeout={TIMEOUT}", "test_killed.py"],
        cwd=pytester.path, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    live_ns = f"vc-e2e-live-{os.getpid()}"
    killed_ns = ""
    try:
        deadline = time.monotonic() + float(TIMEOUT) + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert marker.exists(), f"the inner run never got its cluster (exit {proc.poll()})"
        killed_ns = marker.read_text().strip()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

        ns = host_core.read_namespace(killed_ns)
        assert ns.metadata.deletion_timestamp is None, "a SIGKILLed run cannot have started its teardown"
        assert ns.metadata.labels[_labels.LABEL_PID] == str(proc.pid)

        # A namespace of a run that is still alive on this machine (this very process).
        host_core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=live_ns, labels=_labels.namespace_labels("e2e-live-run", "master"))))

        pytester.makepyfile(test_next="def test_uses_host(vcluster_host):\n    assert vcluster_host.api_client\n")
        result = run("test_next.py")
        result.assert_outcomes(passed=1)

        def gone_or_terminating(name: str) -> bool:
            try:
                return host_core.read_namespace(name).metadata.deletion_timestamp is not None
            except client.ApiException as e:
                return e.status == 404

        deadline = time.monotonic() + 60
        while not gone_or_terminating(killed_ns) and time.monotonic() < deadline:
            time.sleep(1)
        assert gone_or_terminating(killed_ns), f"{killed_ns} of the killed run was not removed"
        assert not gone_or_terminating(live_ns), f"{live_ns} of a live run was removed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for name in (live_ns, killed_ns):
            if name:
                try:
                    host_core.delete_namespace(name)
                except client.ApiException:
                    pass
