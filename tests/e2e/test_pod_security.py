"""Chart value ``podSecurity`` on the real host (`hack/host up`): the two walls of Pod Security.

1. The virtual API server's PodSecurity admission (an AdmissionConfiguration with the level as default)
   refuses a violating pod with the standard message.
2. The host namespace carries the Pod Security Admission labels of the level, so the host checks every pod
   made there again: pods the syncer copies (a virtual namespace may relax wall 1 with its own labels;
   wall 2 still holds) and pods made there directly. Pod ``R-0`` itself passes ``restricted``.

The default, ``privileged``, checks nothing on either side. Images are the ones the host built
(`hack/host images`), never pulled.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import Sides, events_text, suffix, wait  # noqa: E402

from pytest_vcluster.core import ready as _ready  # noqa: E402
from pytest_vcluster.core.contract import contract  # noqa: E402

pytestmark = pytest.mark.e2e

PSA = "pod-security.kubernetes.io"
IMAGE = versions.SHELL_IMAGE


# --------------------------------------------------------------------------- pods


def pod(name: str, *, security: client.V1SecurityContext | None = None,
        pod_security: client.V1PodSecurityContext | None = None, **spec: Any) -> client.V1Pod:
    """A busybox pod sleeping; ``spec`` adds pod spec fields (host_network, volumes...)."""
    mounts = [client.V1VolumeMount(name=v.name, mount_path=f"/mnt/{v.name}") for v in spec.get("volumes") or []]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="c", image=IMAGE, image_pull_policy="Never",
                                           command=["sleep", "3600"], security_context=security,
                                           volume_mounts=mounts or None)],
            security_context=pod_security, termination_grace_period_seconds=0, **spec))


def restricted_pod(name: str) -> client.V1Pod:
    """A pod that meets the "restricted" standard (and so every level)."""
    return pod(name,
               pod_security=client.V1PodSecurityContext(
                   run_as_non_root=True, run_as_user=65534, run_as_group=65534,
                   seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")),
               security=client.V1SecurityContext(
                   allow_privilege_escalation=False, capabilities=client.V1Capabilities(drop=["ALL"])))


def root_pod(name: str) -> client.V1Pod:
    """Runs as root (busybox's user), no securityContext: passes baseline, fails restricted."""
    return pod(name)


def privileged_pod(name: str) -> client.V1Pod:
    return pod(name, security=client.V1SecurityContext(privileged=True))


def host_path_pod(name: str) -> client.V1Pod:
    return pod(name, volumes=[client.V1Volume(name="root", host_path=client.V1HostPathVolumeSource(path="/"))])


def host_network_pod(name: str) -> client.V1Pod:
    return pod(name, host_network=True)


class Env(Sides):
    def refusal(self, core: client.CoreV1Api, namespace: str, body: client.V1Pod) -> str:
        """The message with which ``core`` refuses to create ``body`` in ``namespace`` (fails if it accepts)."""
        with pytest.raises(client.ApiException) as info:
            core.create_namespaced_pod(namespace, body)
        assert info.value.status == 403, info.value.body
        return str(json.loads(info.value.body)["message"])

    def running_on_host(self, ns: str, name: str) -> client.V1Pod:
        """Waits until virtual pod ``ns/name`` runs, seen on both sides; returns its host pod."""
        host_name = self.vc.host_name("Pod", name, ns)

        def running() -> client.V1Pod | None:
            hpod = self.hcore.read_namespaced_pod(host_name, self.hns)
            vpod = self.vcore.read_namespaced_pod(name, ns)
            return hpod if hpod.status.phase == vpod.status.phase == "Running" else None

        return wait(f"pod {ns}/{name} to run on the host", running, timeout=120,
                    diagnose=lambda: events_text(self.vcore, ns) + "\n" + events_text(self.hcore, self.hns))

    def namespace(self, labels: dict[str, str] | None = None) -> str:
        ns = f"team-{suffix()}"
        self.vcore.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
        wait(f"default ServiceAccount in {ns}", lambda: self.vcore.read_namespaced_service_account("default", ns))
        return ns

    def psa_labels(self) -> dict[str, str]:
        labels = self.hcore.read_namespace(self.hns).metadata.labels or {}
        return {k: v for k, v in labels.items() if k.startswith(f"{PSA}/")}


def violates(level: str) -> str:
    """The start of the PodSecurity admission's refusal of pod ``x`` (the name is left out)."""
    return f'is forbidden: violates PodSecurity "{level}:latest": '


def expected_labels(level: str) -> dict[str, str]:
    return {f"{PSA}/{mode}{tail}": (level if not tail else "latest")
            for mode in ("enforce", "warn", "audit") for tail in ("", "-version")}


# --------------------------------------------------------------------------- restricted


@pytest.fixture(scope="module")
def restricted(vcluster_manager: Any, host_api: client.ApiClient) -> Iterator[Env]:
    with vcluster_manager.cluster(values={"podSecurity": "restricted"}) as vc:
        yield Env(vc, host_api)


def test_restricted_host_namespace_is_labelled_and_the_control_plane_runs_there(restricted: Env) -> None:
    assert restricted.vc.values["podSecurity"] == "restricted"
    assert restricted.psa_labels() == expected_labels("restricted")
    # The cluster is ready, so pod R-0 was admitted by the labelled namespace and runs.
    r0 = restricted.hcore.read_namespaced_pod(contract.control_plane_pod(restricted.release), restricted.hns)
    assert r0.status.phase == "Running"
    # Ready as VCluster.create means it (the syncer's mark): the kubelet's own Ready can lag a probe period.
    assert _ready.cluster_ready(r0), r0.status.conditions
    assert all(c.state.running for c in r0.status.container_statuses), r0.status.container_statuses
    # The label was there before R-0 was made (VCluster.create labels the namespace it creates), and
    # the host still admits R-0's spec there today: a dry-run create is checked by PodSecurity, too.
    spec = restricted.hcore.api_client.sanitize_for_serialization(r0.spec)
    spec.pop("nodeName")
    restricted.hcore.create_namespaced_pod(restricted.hns, {"metadata": {"generateName": "r0-"}, "spec": spec},
                                           dry_run="All")


def test_restricted_virtual_api_refuses_privileged_and_root_pods(restricted: Env) -> None:
    ns = restricted.namespace()
    for body in (privileged_pod("x"), root_pod("x")):
        message = restricted.refusal(restricted.vcore, ns, body)
        print(f"virtual API: {message}")
        assert message.startswith('pods "x" ' + violates("restricted")), message
    assert "privileged (container \"c\" must not set securityContext.privileged=true)" in \
        restricted.refusal(restricted.vcore, ns, privileged_pod("x"))
    assert restricted.vcore.list_namespaced_pod(ns).items == []


def test_restricted_compliant_pod_runs_on_the_host(restricted: Env) -> None:
    """The syncer's copy of a restricted pod (its token volume rewritten, env and hostAliases added)
    still meets restricted on the host."""
    ns = restricted.namespace()
    restricted.vcore.create_namespaced_pod(ns, restricted_pod("ok"))
    hpod = restricted.running_on_host(ns, "ok")
    assert hpod.spec.security_context.run_as_non_root is True


def test_restricted_host_refuses_what_the_virtual_cluster_lets_through(restricted: Env) -> None:
    """Wall 2: a virtual namespace labelled privileged admits a root pod in the virtual cluster, but the
    host refuses its copy (a SyncError event on the virtual pod); a pod made straight in the host
    namespace is refused too."""
    message = restricted.refusal(restricted.hcore, restricted.hns, root_pod("x"))
    print(f"host: {message}")
    assert message.startswith('pods "x" ' + violates("restricted")), message

    ns = restricted.namespace({f"{PSA}/enforce": "privileged"})
    restricted.vcore.create_namespaced_pod(ns, root_pod("root"))  # admitted by the virtual API
    uid = restricted.vcore.read_namespaced_pod("root", ns).metadata.uid

    def sync_error() -> client.CoreV1Event | None:
        for event in restricted.vcore.list_namespaced_event(ns).items:
            if event.reason == "SyncError" and event.involved_object.uid == uid:
                return event
        return None

    event = wait("a SyncError event on the virtual pod", sync_error, timeout=60,
                 diagnose=lambda: events_text(restricted.vcore, ns))
    print(f"virtual event: {event.message}")
    assert violates("restricted") in event.message, event.message
    host_name = restricted.vc.host_name("Pod", "root", ns)
    assert host_name not in {p.metadata.name for p in restricted.hcore.list_namespaced_pod(restricted.hns).items}


# --------------------------------------------------------------------------- privileged (the default)


def test_default_allows_privileged_pods_and_leaves_the_host_namespace_unlabelled(
        vcluster: Any, host_api: client.ApiClient) -> None:
    env = Env(vcluster, host_api)
    assert vcluster.values.get("podSecurity", contract.POD_SECURITY_DEFAULT) == "privileged"
    assert env.psa_labels() == {}
    ns = env.namespace()
    env.vcore.create_namespaced_pod(ns, privileged_pod("priv"))
    hpod = env.running_on_host(ns, "priv")
    assert hpod.spec.containers[0].security_context.privileged is True


# --------------------------------------------------------------------------- baseline


@pytest.mark.vcluster(values={"podSecurity": "baseline"})
def test_baseline_refuses_host_access_and_allows_root(vcluster: Any, host_api: client.ApiClient) -> None:
    env = Env(vcluster, host_api)
    assert env.psa_labels() == expected_labels("baseline")
    ns = env.namespace()
    for body, violation in ((host_path_pod("x"), 'hostPath volumes (volume "root")'),
                            (host_network_pod("x"), "host namespaces (hostNetwork=true)"),
                            (privileged_pod("x"), 'privileged (container "c" must not set '
                                                  "securityContext.privileged=true)")):
        message = env.refusal(env.vcore, ns, body)
        print(f"virtual API: {message}")
        assert message.startswith('pods "x" ' + violates("baseline")), message
        assert violation in message, message
    assert env.vcore.list_namespaced_pod(ns).items == []
    env.vcore.create_namespaced_pod(ns, root_pod("root"))
    hpod = env.running_on_host(ns, "root")
    assert hpod.spec.security_context is None or hpod.spec.security_context.run_as_non_root is not True


# --------------------------------------------------------------------------- the command line


def test_vcluster_set_chooses_the_level_of_every_cluster_of_a_run(pytester: pytest.Pytester, run: Any) -> None:
    pytester.makepyfile(
        """
        import json

        import pytest
        from kubernetes import client


        def test_restricted(vcluster):
            labels = vcluster.host.core_v1().read_namespace(vcluster.host_namespace).metadata.labels
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
            core = client.CoreV1Api(vcluster.api_client)
            with pytest.raises(client.ApiException) as info:
                core.create_namespaced_pod("default", {"metadata": {"name": "x"}, "spec": {"containers": [
                    {"name": "c", "image": "pytest-vcluster.local/busybox:1.35"}]}})
            assert info.value.status == 403
            message = json.loads(info.value.body)["message"]
            assert message.startswith('pods "x" is forbidden: violates PodSecurity "restricted:latest": '), message
        """
    )
    run("--vcluster-set", "podSecurity=restricted").assert_outcomes(passed=1)
