"""VCluster.create and the manager's bookkeeping, with fake host, Helm and readiness (no cluster)."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace as NS
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from pytest_vcluster.core import images
from pytest_vcluster.core import labels as _labels
from pytest_vcluster.core import ready as _ready
from pytest_vcluster.core import vcluster as vcluster_module
from pytest_vcluster.core.errors import ConfigError, NotReadyError, VClusterError
from pytest_vcluster.core.settings import Settings
from pytest_vcluster.core.values import ClusterOptions
from pytest_vcluster.core.vcluster import VCluster
from pytest_vcluster.plugin.manager import Summary, VClusterManager

if TYPE_CHECKING:  # for annotations only: under pytest 7 "conftest" may name another directory's conftest
    from conftest import FakeAPIServer

#: the package's own syncer image, as the plugin names it (built from the syncer source it ships)
SYNCER_IMAGE = images.default_ref()[0]

SECRET_KUBECONFIG = yaml.safe_dump({
    "apiVersion": "v1", "kind": "Config", "current-context": "c",
    "clusters": [{"name": "c", "cluster": {"server": "https://localhost:8443", "certificate-authority-data": "Q0E="}}],
    "users": [{"name": "u", "user": {"token": "tok"}}],
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
})


class FakeCore:
    def __init__(self, pod_ready: bool = True) -> None:
        self.namespaces: dict[str, dict[str, str]] = {}
        self.deleted: list[str] = []
        self.listed: list[str] = []
        self.pod_ready = pod_ready

    def create_namespace(self, body: Any, **kw: Any) -> None:
        name = body.metadata.name
        if name in self.namespaces:
            raise ApiException(status=409, reason="Conflict")
        self.namespaces[name] = dict(body.metadata.labels)

    def delete_namespace(self, name: str, **kw: Any) -> None:
        self.deleted.append(name)

    def read_namespace(self, name: str, **kw: Any) -> Any:
        raise ApiException(status=404)

    def list_namespace(self, label_selector: str = "", **kw: Any) -> Any:
        self.listed.append(label_selector)
        return NS(items=[])

    def list_node(self, **kw: Any) -> Any:
        """One node holding the package's syncer image (the syncer image step finds it there)."""
        return NS(items=[NS(metadata=NS(name="n"), status=NS(images=[NS(names=[str(SYNCER_IMAGE)])]))])

    def read_namespaced_pod(self, name: str, namespace: str, **kw: Any) -> Any:
        ready = "True" if self.pod_ready else "False"
        return NS(metadata=NS(name=name), spec=NS(node_name="n", init_containers=[], containers=[]),
                  status=NS(phase="Running", conditions=[NS(type="Ready", status=ready, reason=None, message=None)],
                            container_statuses=[], init_container_statuses=[]))

    def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
        return NS(data={"config": base64.b64encode(SECRET_KUBECONFIG.encode()).decode()})

    def list_namespaced_event(self, namespace: str) -> Any:
        return NS(items=[])

    def read_namespaced_pod_log(self, *a: Any, **kw: Any) -> str:
        return "log line"


class FakeHost:
    provider = "kubeconfig"
    kind_cluster = None
    server = "https://host:6443"
    version = "v1.33.13"
    context = None
    api_client = None

    def __init__(self, tmp_path: Path, core: FakeCore) -> None:
        self.kubeconfig_path = tmp_path / "host.kubeconfig"
        self.core = core

    def core_v1(self) -> FakeCore:
        return self.core

    def service_cidr(self, namespace: str) -> str:
        return "10.96.0.0/12"

    def check_persistence(self, values: dict[str, Any]) -> None:
        self.checked_values = values

    def close(self) -> None:
        pass


class FakeHelm:
    def __init__(self) -> None:
        self.installs: list[tuple[str, str, Path, dict[str, Any]]] = []

    def install(self, release: str, namespace: str, chart: Path, values: dict[str, Any], timeout: float) -> None:
        self.installs.append((release, namespace, chart, values))


class FakeForward:
    port = 45678
    last_error = None
    closed = False

    def close(self) -> None:
        FakeForward.closed = True


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    path = tmp_path / "chart"
    path.mkdir()
    (path / "Chart.yaml").write_text("apiVersion: v2\nname: vcluster\nversion: 0.1.0\n")
    return path


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vcluster_module, "_connect",
                        lambda host, ns, release, connect: (FakeForward(), "https://127.0.0.1:45678"))
    monkeypatch.setattr(_ready, "wait_virtual_side", lambda api, server, deadline: None)


def test_create_installs_with_labels_values_and_kubeconfig(tmp_path: Path, chart: Path) -> None:
    core, helm = FakeCore(), FakeHelm()
    host = FakeHost(tmp_path, core)
    labels = _labels.namespace_labels("abcdef", "gw1")
    vc = VCluster.create(host, name="vc-abcdef-gw1-1", values={"serviceCIDR": "x", "a": {"b": 1}},  # type: ignore[arg-type]
                         set={"a.c": 2}, chart=chart, labels=labels, workdir=tmp_path / "work", helm=helm)
    assert core.namespaces == {"vc-abcdef-gw1-1": labels}
    release, namespace, chart_path, values = helm.installs[0]
    assert (release, namespace, chart_path) == ("vc-abcdef-gw1-1", "vc-abcdef-gw1-1", chart)
    assert values == {"serviceCIDR": "x", "a": {"b": 1, "c": 2}}  # user values win over discovery
    kc = yaml.safe_load(vc.kubeconfig_path.read_text())
    assert vc.kubeconfig_path == tmp_path / "work" / "vc-abcdef-gw1-1.kubeconfig"
    assert kc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:45678"
    assert kc["clusters"][0]["cluster"]["tls-server-name"] == "localhost"
    assert vc.api_client.configuration.host == "https://127.0.0.1:45678"
    assert vc.setup_seconds >= 0
    assert set(vc.phase_seconds) >= {"namespace", "helm-install", "pod-ready", "virtual-api"}
    vc.delete()
    assert core.deleted == ["vc-abcdef-gw1-1"]
    assert FakeForward.closed


def test_discovered_service_cidr_is_passed(tmp_path: Path, chart: Path) -> None:
    helm = FakeHelm()
    VCluster.create(FakeHost(tmp_path, FakeCore()), name="vc-a-m-1", chart=chart, workdir=tmp_path,  # type: ignore[arg-type]
                    helm=helm)
    assert helm.installs[0][3] == {"serviceCIDR": "10.96.0.0/12"}


def test_existing_namespace_is_clear_error(tmp_path: Path, chart: Path) -> None:
    core = FakeCore()
    core.namespaces["vc-a-m-1"] = {}
    with pytest.raises(VClusterError, match="cannot create host namespace vc-a-m-1: HTTP 409 Conflict: it already"):
        VCluster.create(FakeHost(tmp_path, core), name="vc-a-m-1", chart=chart, workdir=tmp_path,  # type: ignore[arg-type]
                        helm=FakeHelm())


def test_not_ready_deletes_namespace_and_explains(tmp_path: Path, chart: Path) -> None:
    core = FakeCore(pod_ready=False)
    with pytest.raises(NotReadyError) as info:
        VCluster.create(FakeHost(tmp_path, core), name="vc-a-m-1", chart=chart, workdir=tmp_path,  # type: ignore[arg-type]
                        helm=FakeHelm(), timeout=0.5)
    text = str(info.value)
    assert "virtual cluster vc-a-m-1 was not ready within 0s" in text or "within 1s" in text
    assert "for pod vc-a-m-1-0 in host namespace vc-a-m-1 to be Ready" in text
    assert "condition Ready=False" in text
    assert "events in host namespace vc-a-m-1" in text
    assert core.deleted == ["vc-a-m-1"]


def test_not_ready_keeps_namespace_on_request(tmp_path: Path, chart: Path) -> None:
    core = FakeCore(pod_ready=False)
    with pytest.raises(NotReadyError):
        VCluster.create(FakeHost(tmp_path, core), name="vc-a-m-1", chart=chart, workdir=tmp_path,  # type: ignore[arg-type]
                        helm=FakeHelm(), timeout=0.3, keep_on_error=True)
    assert core.deleted == []


def test_helm_failure_deletes_namespace(tmp_path: Path, chart: Path) -> None:
    class BadHelm(FakeHelm):
        def install(self, *a: Any, **kw: Any) -> None:
            raise VClusterError("helm install failed: boom")

    core = FakeCore()
    with pytest.raises(VClusterError, match="boom"):
        VCluster.create(FakeHost(tmp_path, core), name="vc-a-m-1", chart=chart, workdir=tmp_path,  # type: ignore[arg-type]
                        helm=BadHelm())
    assert core.deleted == ["vc-a-m-1"]


@pytest.fixture
def make_manager(tmp_path: Path, fake_apiserver: FakeAPIServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A manager that opens its host the real way: a ``Host`` from a kubeconfig, checked reachable (``GET /version``
    of a fake API server), the stale namespaces' sweep and the syncer image step once per run (the image is on
    every node already), then clusters through the real ``VCluster.create``. Fakes stand only for I/O: the host's
    core API (:class:`FakeCore`), Helm (:class:`FakeHelm`), the helm binary's lookup and the service CIDR probe.
    Recycling off unless asked for (the fake host has no etcd to reset)."""
    from pytest_vcluster.core import helm as helm_module
    from pytest_vcluster.core import host as host_module
    from pytest_vcluster.core.host import Host

    core, helm = FakeCore(), FakeHelm()
    monkeypatch.setattr(Host, "core_v1", lambda self: core)
    monkeypatch.setattr(Host, "service_cidr", lambda self, namespace: "10.96.0.0/12")
    monkeypatch.setattr(host_module, "require_helm", lambda: "/usr/bin/helm")
    monkeypatch.setattr(helm_module, "Helm", lambda kubeconfig, context=None: helm)
    kubeconfig = fake_apiserver.kubeconfig(tmp_path / "host.kubeconfig")

    def make(chart: Path, **settings: Any) -> tuple[VClusterManager, FakeCore, FakeHelm]:
        settings.setdefault("recycle", False)
        manager = VClusterManager(Settings(host="kubeconfig", host_kubeconfig=kubeconfig, chart=chart, **settings),
                                  run_id="abcdef", worker="gw0", shared_dir=lambda: tmp_path / "shared",
                                  workdir=lambda: tmp_path / "work", env={})
        return manager, core, helm

    return make


def test_manager_opens_its_host_once_with_the_sweep_and_the_syncer_image(tmp_path: Path, chart: Path,
                                                                          make_manager: Any) -> None:
    manager, core, helm = make_manager(chart)
    manager.release(manager.create(owner="t::a"))
    manager.release(manager.create(owner="t::b"))
    assert manager.summary.host == f"kubeconfig {manager.host.server} (Kubernetes v1.33.13)"
    assert core.listed == [_labels.SELECTOR]  # the sweep of dead runs' namespaces: once
    image = SYNCER_IMAGE.values()["syncer"]["image"]
    assert [install[3]["syncer"]["image"] for install in helm.installs] == [image, image]
    assert (tmp_path / "shared" / "syncer-image-abcdef.ref").read_text() == str(SYNCER_IMAGE)
    assert (tmp_path / "shared" / "stale-cleanup-abcdef.done").exists()
    assert manager.finish(timeout=1) == []


def test_values_are_resolved_once_on_the_way_to_helm(tmp_path: Path, chart: Path, make_manager: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """fixture -> manager (values_of: the one resolve_values) -> VCluster.create (chart_values=, under the service
    CIDR) -> helm; a fork's values are the lowest layer of that one resolution."""
    from pytest_vcluster.core import values as values_module
    from pytest_vcluster.core.snapshot import Snapshot
    from pytest_vcluster.plugin import manager as manager_module

    resolved: list[dict[str, Any]] = []

    def resolve_values(**layers: Any) -> dict[str, Any]:
        resolved.append(layers)
        return values_module.resolve_values(**layers)

    monkeypatch.setattr(manager_module, "resolve_values", resolve_values)
    monkeypatch.setattr(vcluster_module, "resolve_values", resolve_values)
    monkeypatch.setattr(vcluster_module._snapshot, "restore", lambda *a: 0)
    monkeypatch.setattr(vcluster_module._snapshot, "wait_crds_served", lambda *a: None)
    manager, core, helm = make_manager(chart, values={"a": 1, "b": {"c": 1}})
    fork = Snapshot(source="vc-t", chart_version="0.1.0", taken_at=1.0,
                    values={"serviceCIDR": "10.1.0.0/16", "a": 0, "f": 1})
    vc = manager.create(ClusterOptions(values={"b": {"d": 2}}, fork=fork), owner="t::a", fixture="vcluster")
    assert len(resolved) == 1
    assert helm.installs[0][3] == vc.values == {"serviceCIDR": "10.1.0.0/16", "a": 1, "f": 1,
                                                **SYNCER_IMAGE.values(), "b": {"c": 1, "d": 2}}
    with pytest.raises(VClusterError, match=r"chart_values= are resolved already"):
        VCluster.create(manager.host, chart_values={}, values={"a": 1})


def test_manager_names_labels_and_settings_values(tmp_path: Path, chart: Path, make_manager: Any) -> None:
    manager, core, helm = make_manager(chart, values={"a": 1, "b": {"c": 1}})
    vc1 = manager.create(ClusterOptions(values={"b": {"d": 2}}), owner="t::a", fixture="vcluster")
    vc2 = manager.create(owner="t::a")
    assert (vc1.name, vc2.name) == ("vc-abcdef-gw0-1", "vc-abcdef-gw0-2")
    labels = core.namespaces["vc-abcdef-gw0-1"]
    assert labels[_labels.LABEL_RUN] == "abcdef" and labels[_labels.LABEL_WORKER] == "gw0"
    assert helm.installs[0][3] == {"serviceCIDR": "10.96.0.0/12", **SYNCER_IMAGE.values(), "a": 1,
                                   "b": {"c": 1, "d": 2}}
    assert manager.clusters_of("t::a") == [vc1, vc2]
    manager.release(vc1)
    manager.release(vc2)
    assert core.deleted == ["vc-abcdef-gw0-1", "vc-abcdef-gw0-2"]
    assert manager.clusters_of("t::a") == []
    assert manager.finish(timeout=1) == []
    assert [r.name for r in manager.summary.records] == ["vc-abcdef-gw0-1", "vc-abcdef-gw0-2"]
    assert all(r.teardown_seconds is not None for r in manager.summary.records)


def test_manager_keep_on_failure(tmp_path: Path, chart: Path, make_manager: Any) -> None:
    manager, core, _ = make_manager(chart, keep_on_failure=True)
    vc = manager.create(owner="t::a", fixture="vcluster")
    record = manager.release(vc, failed=True)
    assert core.deleted == []
    assert record is not None and record.kept
    assert record.port_forward_command and "port-forward pod/vc-abcdef-gw0-1-0 8443:6443" in record.port_forward_command
    assert Path(record.kubeconfig or "").exists()
    ok = manager.create(owner="t::b")
    manager.release(ok, failed=False)
    assert core.deleted == [ok.name]


def test_manager_cluster_context_manager(tmp_path: Path, chart: Path, make_manager: Any) -> None:
    manager, core, _ = make_manager(chart)
    with manager.cluster(set={"x": 1}) as vc:
        assert vc.name == "vc-abcdef-gw0-1"
    assert core.deleted == ["vc-abcdef-gw0-1"]
    with pytest.raises(ConfigError, match="unknown keyword bogus"):
        with manager.cluster(bogus=1):
            pass


def test_manager_finish_reports_leaks(tmp_path: Path, chart: Path, monkeypatch: pytest.MonkeyPatch,
                                     make_manager: Any) -> None:
    manager, core, _ = make_manager(chart)
    manager.create(owner="t::a")  # never released: finish deletes it
    monkeypatch.setattr("pytest_vcluster.plugin.manager.wait_namespaces_gone", lambda core, names, timeout: list(names))
    assert manager.finish(timeout=0.1) == ["vc-abcdef-gw0-1"]
    assert manager.summary.leaks == ["vc-abcdef-gw0-1"]


def test_summary_roundtrip_for_xdist(tmp_path: Path, chart: Path, make_manager: Any) -> None:
    manager, _, _ = make_manager(chart)
    manager.release(manager.create(owner="t::a"))
    manager.summary.leaks.append("leaky")
    merged = Summary()
    merged.merge_dict(manager.summary.to_dict())
    merged.merge_dict(manager.summary.to_dict())
    assert len(merged.records) == 2
    assert merged.leaks == ["leaky", "leaky"]


def test_summary_terminal_output(tmp_path: Path, chart: Path, make_manager: Any) -> None:
    from pytest_vcluster.plugin.report import write_summary

    manager, _, _ = make_manager(chart, keep_on_failure=True)
    manager.release(manager.create(owner="t.py::test_a", fixture="vcluster"), failed=True)
    manager.summary.leaks.append("vc-old-m-1")
    lines: list[str] = []

    class TR:
        def section(self, title: str, sep: str = "=") -> None:
            lines.append(f"== {title}")

        def write_line(self, line: str, **kw: Any) -> None:
            lines.append(line)

    write_summary(TR(), manager.summary, manager.settings)
    text = "\n".join(lines)
    assert "== vcluster" in text
    assert f"host: kubeconfig {manager.host.server} (Kubernetes v1.33.13)" in text
    assert "vc-abcdef-gw0-1  setup" in text and "vcluster  t.py::test_a" in text
    assert "kept cluster vc-abcdef-gw0-1 (test t.py::test_a) in host namespace vc-abcdef-gw0-1:" in text
    assert "WARNING: pytest-vcluster: host namespaces still present after teardown (leaked): vc-old-m-1" in text


TABLE = """default: "1.33"
versions:
  "1.33": {kubernetes: v1.33.13, etcd: 3.5.24-0}
  "1.35": {kubernetes: v1.35.4, etcd: 3.6.6-0}
  "1.37": {kubernetes: v1.37.2, etcd: 3.7.0-0}
"""


def tags(values: dict[str, Any]) -> tuple[str, str, str]:
    plane = values["controlPlane"]
    return (plane["apiServer"]["image"]["tag"], plane["controllerManager"]["image"]["tag"],
            plane["etcd"]["image"]["tag"])


def test_the_kubernetes_version_picks_the_image_tags_and_the_pool(tmp_path: Path, chart: Path,
                                                                  make_manager: Any) -> None:
    """--vcluster-kubernetes for the run, kubernetes= for one cluster (it wins), explicit values over both; clusters
    of two versions have two pool keys; a fork of another version and a version the table lacks are refused."""
    from pytest_vcluster.core.snapshot import Snapshot

    (chart / "kubernetes-versions.yaml").write_text(TABLE)
    manager, core, helm = make_manager(chart, kubernetes="1.35")
    manager.create(owner="t::a")
    manager.create(ClusterOptions(kubernetes="1.37"), owner="t::b")
    manager.create(ClusterOptions(kubernetes="v1.37.2",
                                  set={"controlPlane": {"etcd": {"image": {"tag": "3.7.1-0"}}}}), owner="t::c")
    assert [tags(install[3]) for install in helm.installs] == [
        ("v1.35.4", "v1.35.4", "3.6.6-0"), ("v1.37.2", "v1.37.2", "3.7.0-0"), ("v1.37.2", "v1.37.2", "3.7.1-0")]
    assert manager.cluster_key(ClusterOptions()) != manager.cluster_key(ClusterOptions(kubernetes="1.37"))
    assert manager.cluster_key(ClusterOptions(kubernetes="1.35")) == manager.cluster_key(ClusterOptions())
    with pytest.raises(ConfigError) as info:
        manager.create(ClusterOptions(kubernetes="1.36"), owner="t::d", fixture="vcluster")
    assert str(info.value) == ("vcluster: Kubernetes '1.36' is not a supported virtual control plane; give one of "
                               "'1.33', '1.35', '1.37' (supported: 1.33 (v1.33.13), 1.35 (v1.35.4), 1.37 (v1.37.2))")
    fork = Snapshot(source="vc-t", chart_version="0.1.0", taken_at=1.0,
                    values={"controlPlane": {"apiServer": {"image": {"tag": "v1.35.4"}}}})
    with pytest.raises(ConfigError) as info:
        manager.create(ClusterOptions(kubernetes="1.37", fork=fork), owner="t::e", fixture="vcluster_factory")
    assert str(info.value) == (
        "vcluster_factory: kubernetes='1.37' cannot fork a template of Kubernetes v1.35.4: a fork runs its template's "
        "version (its etcd data is that version's); drop kubernetes= or fork a template made with kubernetes='1.37'")
    assert len(helm.installs) == 3, "a refused cluster was installed"
