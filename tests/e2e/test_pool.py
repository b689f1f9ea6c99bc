"""The warm pool (``--vcluster-pool``) against the real host: inner pytest runs (conftest's ``run``) claim
pool clusters; nothing is shared, a killed run's pool is reaped, a kept pool is reused, other options
get cold clusters. Every namespace an inner run made is gone (or terminating) when each test ends. Runs whose
counts would change with recycling turn it off (``--vcluster-recycle=no``): the pool with recycling is in
test_recycle.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))
from e2e_helpers import E2E_TIMEOUT, namespace_exists, suffix, wait  # noqa: E402

from pytest_vcluster.core import labels as _labels  # noqa: E402
from pytest_vcluster.core import pool as _pool

pytestmark = pytest.mark.e2e

#: a test file whose tests each write the host namespace of their cluster to ns-<test>.txt
RECORDING_TESTS = """
import os

import pytest
from kubernetes import client


def record(vc, name):
    client.CoreV1Api(vc.api_client).read_namespaced_service_account("default", "default")
    with open(os.path.join(os.path.dirname(__file__), f"ns-{{name}}.txt"), "w") as fh:
        fh.write(vc.host_namespace)


@pytest.mark.parametrize("i", range({n}))
def test_default(vcluster, i):
    record(vcluster, f"{{__name__}}-{{i}}")
"""


def recorded(path: Path) -> dict[str, str]:
    return {p.name[3:-4]: p.read_text().strip() for p in path.glob("ns-*.txt")}


def terminating_or_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        return core.read_namespace(name).metadata.deletion_timestamp is not None
    except client.ApiException as e:
        if e.status == 404:
            return True
        raise


def own_pool() -> str:
    """Options giving a test's inner runs a pool of their own (the key digests the session's values), so
    tests running at the same time cannot claim each other's clusters; podLabels only labels the pod."""
    return f"--vcluster-set=podLabels.e2e-pool=p{suffix()}"  # a letter first: Helm typing makes 123456 a number


def pool_key(output: str) -> str:
    match = re.search(r"^pool \(size \d+, key ([0-9a-f]{16})\)", output, re.M)
    assert match, f"no pool line in the summary:\n{output}"
    return match.group(1)


def live_pool_namespaces(core: client.CoreV1Api, key: str) -> list[str]:
    return [ns.metadata.name for ns in core.list_namespace(label_selector=f"{_labels.LABEL_POOL}={key}").items
            if ns.metadata.deletion_timestamp is None]


def popen_pytest(path: Path, host_kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    """An inner run in the background, with the same options as conftest's ``run``."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VCLUSTER_HOST", "PYTEST_ADDOPTS")}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--vcluster-host=kubeconfig",
         f"--vcluster-host-kubeconfig={host_kubeconfig}", f"--vcluster-timeout={E2E_TIMEOUT}", *args],
        cwd=path, env=env, start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def two_runs_at_once(run: Any, host_kubeconfig: Path, first: Path, second: Path,
                     *args: str) -> tuple[pytest.RunResult, str]:
    """Run the tests in ``first`` (conftest's ``run``) while another run does ``second``; both with ``args``.
    Returns the first run's result and the second's output (asserted green)."""
    background = popen_pytest(second, host_kubeconfig, *args)
    try:
        result = run(*args, str(first))
        out, _ = background.communicate(timeout=1800)
    finally:
        if background.poll() is None:
            os.killpg(background.pid, signal.SIGKILL)
    assert background.returncode == 0, out
    return result, out


def kill_then_run_next(proc: subprocess.Popen[str], pytester: pytest.Pytester, run: Any) -> None:
    """SIGKILL the run ``proc`` (its whole process group), then run a test that opens the host: its reaper
    removes what the killed run left."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    pytester.makepyfile(test_next="def test_uses_host(vcluster_host):\n    assert vcluster_host.api_client\n")
    run("test_next.py").assert_outcomes(passed=1)


def test_claims_are_atomic_on_the_real_api_server(host_core: client.CoreV1Api) -> None:
    """8 threads claim 3 free pool namespaces at once: each namespace goes to exactly one claimer."""
    key = f"e2e{suffix()}{suffix()}"[:16]
    names = [f"vc-e2e-claim-{suffix()}" for _ in range(3)]
    for name in names:
        host_core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=name, labels={**_labels.namespace_labels("e2epool", "pool"), **_pool.pool_labels(key, _pool.FREE)})))
    got: list[str | None] = []
    barrier = threading.Barrier(8)

    def claimer(i: int) -> None:
        barrier.wait()
        got.append(_pool.claim(host_core, key, _labels.namespace_labels(f"claimer{i}", "gw0")))

    try:
        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(n for n in got if n) == sorted(names)
        assert got.count(None) == 5
        for name in names:
            labels = host_core.read_namespace(name).metadata.labels
            assert labels[_labels.LABEL_POOL_STATE] == _pool.CLAIMED
            assert labels[_labels.LABEL_RUN].startswith("claimer")
    finally:
        for name in names:
            host_core.delete_namespace(name)


def test_xdist_workers_and_two_concurrent_runs_never_share_a_cluster(
    pytester: pytest.Pytester, run: Any, host_core: client.CoreV1Api, host_kubeconfig: Path
) -> None:
    first = pytester.mkdir("first")
    second = pytester.mkdir("second")
    for path in (first, second):
        (path / "test_pool.py").write_text(RECORDING_TESTS.format(n=4))
    tag = own_pool()
    # without recycling: every test gets a cluster no other test ever had (recycled clusters: test_recycle.py)
    result, out = two_runs_at_once(run, host_kubeconfig, first, second, "-n", "2", "--vcluster-pool=2",
                                   "--vcluster-recycle=no", tag)
    result.assert_outcomes(passed=4)
    names = list(recorded(first).values()) + list(recorded(second).values())
    assert len(names) == 8
    assert len(set(names)) == 8, f"two tests got the same cluster: {sorted(names)}"
    result.stdout.fnmatch_lines(["pool (size 2, key *): * of 4 eligible cluster(s) claimed from the pool*"])
    key = pool_key(result.stdout.str())
    assert pool_key(out) == key, "the two runs did not share one pool"
    assert any("-pool-" in name for name in names), f"no test got a pool cluster: {names}"
    for name in names:
        assert terminating_or_gone(host_core, name), f"{name} left behind"
    assert live_pool_namespaces(host_core, key) == [], f"the runs left pool clusters:\n{out}"


def test_a_killed_runs_pool_is_reaped_a_live_runs_is_not(
    pytester: pytest.Pytester, run: Any, host_core: client.CoreV1Api, host_kubeconfig: Path
) -> None:
    pytester.makepyfile(test_hangs="import time\n\ndef test_hangs():\n    time.sleep(900)\n")
    proc = popen_pytest(pytester.path, host_kubeconfig, "--vcluster-pool=2", own_pool(), "test_hangs.py")
    # a live run's free pool cluster: this process is alive
    live = f"vc-e2e-live-pool-{suffix()}"
    host_core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=live, labels={**_labels.namespace_labels("e2elive", "pool"), **_pool.pool_labels("e" * 16, _pool.FREE)})))
    killed: list[str] = []
    try:
        def two_free() -> list[str]:
            names = [ns.metadata.name for ns in host_core.list_namespace(
                label_selector=f"{_labels.LABEL_PID}={proc.pid},{_labels.LABEL_POOL_STATE}={_pool.FREE}").items]
            return names if len(names) == 2 else []

        killed = wait("the killed run's pool to hold 2 free clusters", two_free, timeout=float(E2E_TIMEOUT))
        kill_then_run_next(proc, pytester, run)
        for name in killed:
            assert terminating_or_gone(host_core, name), f"{name} of the killed run's pool was not removed"
        assert not terminating_or_gone(host_core, live), "a live run's pool cluster was removed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for name in [live, *killed]:
            if namespace_exists(host_core, name):
                host_core.delete_namespace(name)


def test_a_kept_pool_is_claimed_by_the_next_run(
    pytester: pytest.Pytester, run: Any, host_core: client.CoreV1Api
) -> None:
    pytester.makepyfile(test_one=RECORDING_TESTS.format(n=1))
    tag = own_pool()
    first = run("--vcluster-pool=1", "--vcluster-pool-keep", "--vcluster-recycle=no", tag)
    key = pool_key(first.stdout.str())
    try:
        first.assert_outcomes(passed=1)
        first.stdout.fnmatch_lines(
            ["pool (size 1, key *): 1 of 1 eligible cluster(s) claimed*, 1 kept for the next run"])
        kept = live_pool_namespaces(host_core, key)
        assert len(kept) == 1, f"the run did not keep exactly one free cluster: {kept}"
        labels = host_core.read_namespace(kept[0]).metadata.labels
        assert labels[_labels.LABEL_POOL_STATE] == _pool.FREE and labels[_labels.LABEL_POOL_KEPT] == "true"
        started = time.monotonic()
        second = run("--vcluster-pool=1", "--vcluster-recycle=no", tag)
        second.assert_outcomes(passed=1)
        assert recorded(pytester.path)["test_one-0"] == kept[0], "the next run did not claim the kept cluster"
        second.stdout.fnmatch_lines(["pool (size 1, key *): 1 of 1 eligible cluster(s) claimed*"])
        print(f"second run with a kept pool: {time.monotonic() - started:.1f}s")
        assert terminating_or_gone(host_core, kept[0])
        assert live_pool_namespaces(host_core, key) == [], "the second run left pool clusters"
    finally:
        for name in live_pool_namespaces(host_core, key):
            host_core.delete_namespace(name)


def test_other_options_get_a_cold_cluster(pytester: pytest.Pytester, run: Any) -> None:
    pytester.makepyfile(test_mixed=RECORDING_TESTS.format(n=1) + """

@pytest.mark.vcluster(values={"syncer": {"logLevel": "debug"}})
def test_other_values(vcluster):
    record(vcluster, "other")


@pytest.mark.vcluster(timeout=600)
def test_other_timeout_only(vcluster):
    record(vcluster, "timeout")
""")
    result = run("--vcluster-pool=1", "--vcluster-recycle=no", own_pool())
    result.assert_outcomes(passed=3)
    names = recorded(pytester.path)
    assert "-pool-" not in names["other"], f"a test with other values got a pool cluster: {names}"
    assert "-pool-" in names["test_mixed-0"] and "-pool-" in names["timeout"], names
    result.stdout.fnmatch_lines(["pool (size 1, key *): 2 of 2 eligible cluster(s) claimed from the pool*"])
