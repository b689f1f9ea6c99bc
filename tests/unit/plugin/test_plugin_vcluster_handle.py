"""The VCluster handle's pure parts: host-name translation, helper commands, set values."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import pytest
import yaml

from pytest_vcluster import VCluster as PublicVCluster
from pytest_vcluster.core import vcluster as vcluster_module
from pytest_vcluster.core.values import set_values
from pytest_vcluster.core.vcluster import VCluster


class FakeHost:
    kubeconfig_path = Path("/tmp/host.kubeconfig")
    context = "kind-k"


def make(tmp_path: Path, name: str = "vc-1a2b3c-gw0-1") -> VCluster:
    kc = tmp_path / f"{name}.kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": "https://127.0.0.1:41000", "tls-server-name": "localhost",
                                                "certificate-authority-data": "Q0E="}}],
        "users": [{"name": name, "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }))
    return VCluster(FakeHost(), name, name, kubeconfig_path=kc, api_client=NS(close=lambda: None),  # type: ignore[arg-type]
                    server="https://127.0.0.1:41000", forward=None)


def test_public_import() -> None:
    assert PublicVCluster is VCluster


def test_attributes(tmp_path: Path) -> None:
    vc = make(tmp_path)
    assert vc.name == vc.release == vc.host_namespace == "vc-1a2b3c-gw0-1"
    assert vc.kubeconfig_path.exists()
    assert "vc-1a2b3c-gw0-1" in repr(vc)


def test_host_name_by_kind_name_namespace(tmp_path: Path) -> None:
    vc = make(tmp_path)
    assert vc.host_name("Pod", "web", "default") == "web-x-default-x-vc-1a2b3c-gw0-1"
    assert vc.host_name("ConfigMap", "cfg", "team-a") == "cfg-x-team-a-x-vc-1a2b3c-gw0-1"
    assert vc.host_name("Service", "svc") == "svc-x-default-x-vc-1a2b3c-gw0-1"


def test_host_name_from_objects(tmp_path: Path) -> None:
    from kubernetes import client

    vc = make(tmp_path)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="p", namespace="ns"))
    assert vc.host_name(pod) == "p-x-ns-x-vc-1a2b3c-gw0-1"
    assert vc.host_name({"kind": "Secret", "metadata": {"name": "s", "namespace": "n2"}}) == "s-x-n2-x-vc-1a2b3c-gw0-1"


@pytest.mark.parametrize("name", ["a-very-long-name-of-a-deployment-pod-abcdef", "a" * 51 + ".b", "a" * 253])
def test_host_name_long_is_the_syncers(tmp_path: Path, name: str) -> None:
    """Long names are shortened by the syncer's own rule (tests/unit/test_contracts.py has the edge cases)."""
    from vcluster_syncer.translate.names import host_name_for
    from vcluster_syncer.translate.settings import TranslatorSettings

    vc = make(tmp_path)
    got = vc.host_name("Pod", name, "default")
    assert got == host_name_for("Pod", name, "default", TranslatorSettings(vc.release, vc.host_namespace))
    assert len(got) <= 63 and ".-" not in got


def test_host_name_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make(tmp_path).host_name("Pod")


def test_port_forward_command_and_standalone_kubeconfig(tmp_path: Path) -> None:
    vc = make(tmp_path)
    assert vc.port_forward_command == (
        "kubectl --kubeconfig /tmp/host.kubeconfig --context kind-k -n vc-1a2b3c-gw0-1 "
        "port-forward pod/vc-1a2b3c-gw0-1-0 8443:6443"
    )
    path = vc.write_standalone_kubeconfig(tmp_path / "kept.kubeconfig")
    data = yaml.safe_load(path.read_text())
    assert data["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:8443"
    assert data["clusters"][0]["cluster"]["tls-server-name"] == "localhost"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {}),
        ({"syncer.image.tag": "x", "a.b": 1}, {"syncer": {"image": {"tag": "x"}}, "a": {"b": 1}}),
        ({"flag": "true"}, {"flag": "true"}),  # dict values are used as given
        (["flag=true", "a.b=c"], {"flag": True, "a": {"b": "c"}}),  # strings use helm typing
        ("x=1", {"x": 1}),
        (["a=1,b=2"], {"a": 1, "b": 2}),  # a list item is split like --vcluster-set
    ],
)
def test_set_values(given: Any, expected: dict[str, Any]) -> None:
    assert set_values(given) == expected


def test_create_rejects_bad_name() -> None:
    from pytest_vcluster import VClusterError

    with pytest.raises(VClusterError, match="cannot name a virtual cluster"):
        VCluster.create(FakeHost(), name="Bad_Name")  # type: ignore[arg-type]


class FakeCore:
    def __init__(self, gone_after: int) -> None:
        self.reads = 0
        self.gone_after = gone_after

    def read_namespace(self, name: str, **kw: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        self.reads += 1
        if self.reads > self.gone_after:
            raise ApiException(status=404)
        return NS()


def test_wait_namespaces_gone() -> None:
    assert vcluster_module.wait_namespaces_gone(FakeCore(gone_after=2), ["a"], timeout=10) == []
    assert vcluster_module.wait_namespaces_gone(FakeCore(gone_after=10**6), ["a"], timeout=0.3) == ["a"]


def test_delete_removes_the_kubeconfig_but_not_the_given_workdir(tmp_path: Path) -> None:
    """A cluster made in a given workdir (the plugin's basetemp) leaves no admin kubeconfig behind once deleted."""
    deleted: list[str] = []
    vc = make(tmp_path)
    vc.host = NS(core_v1=lambda: NS(delete_namespace=lambda name, **kw: deleted.append(name)),  # type: ignore[assignment]
                 api_client=None)
    other = tmp_path / "keep.txt"
    other.write_text("x")
    kubeconfig = vc.kubeconfig_path
    vc.delete()
    assert deleted == ["vc-1a2b3c-gw0-1"]
    assert not kubeconfig.exists()
    assert other.exists() and tmp_path.is_dir()
