"""The contract between the three parts: the plugin (pytest_vcluster), the syncer (vcluster_syncer) and the
chart (chart/, rendered with `helm template`).

Every check calls the real code of both sides on edge-case tables; none re-derives a rule. A rule that
changes on one side alone fails here: host names of virtual objects, the syncer's environment variables
that the chart sets (and every chart switch under ``sync.*`` -> the variable -> the syncer's config), the
keys of the kubeconfig Secret ``vc-R``, label keys and ports.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import test_chart
import yaml
from test_chart import CHART, NAMESPACE, RELEASE, containers, render, secret_data
from vcluster_syncer import config as syncer_config
from vcluster_syncer.translate import metadata as syncer_metadata
from vcluster_syncer.translate import names as syncer_names
from vcluster_syncer.translate.settings import TranslatorSettings

from pytest_vcluster import _kubeconfig, _labels, _naming
from pytest_vcluster import vcluster as vcluster_module
from pytest_vcluster.vcluster import VCluster

helm = test_chart.helm  # the fixture: path of a helm binary (tests fail without one, as in test_chart.py)

# Kinds the syncer creates on the host under a translated name.
KINDS = ("Pod", "Service", "Endpoints", "ConfigMap", "Secret", "PersistentVolumeClaim", "NetworkPolicy")
MAX_NAME = 63
# DNS-1123 subdomain (what every host kind accepts), at most 63 characters (the syncer's limit).
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


# --------------------------------------------------------------------------- host names


def _dot_at(position: int, tail: str = "b") -> str:
    """A virtual object name (so also its host name ``<name>-x-<ns>-x-<R>``) with ``.`` at 1-based ``position``."""
    return "a" * (position - 1) + "." + tail


def _fill(total: int, namespace: str, release: str) -> str:
    """A name that makes ``<name>-x-<namespace>-x-<release>`` exactly ``total`` characters long."""
    return "n" * (total - len(f"-x-{namespace}-x-{release}"))


R = "vc-1a2b3c-gw0-1"
R53 = "vc-" + "r" * 50  # the plugin's longest release name (Helm's limit)
R52 = "vc-" + "r" * 49  # the chart's longest (StatefulSet limit)
NS63 = "n" * 63

HOST_NAME_CASES: list[tuple[str, str, str, str]] = [
    # (id, name, namespace, release)
    ("short", "web", "default", R),
    ("dot-51", _dot_at(51), "default", R),
    ("dot-52", _dot_at(52), "default", R),
    ("dot-53", _dot_at(53), "default", R),
    ("dot-52-long-tail", _dot_at(52, tail="b" * 40), "default", R),
    ("dots-51-53-55", "a" * 50 + ".b.c.d", "default", R),
    ("dns-subdomain-name", "web.api.example-1.svc", "team-a", R),
    ("exactly-62", _fill(62, "ns", R), "ns", R),
    ("exactly-63", _fill(63, "ns", R), "ns", R),
    ("exactly-64", _fill(64, "ns", R), "ns", R),
    ("exactly-63-dot-end-of-name", _fill(62, "ns", R)[:-1] + ".m", "ns", R),
    ("long-name", "a-very-long-name-of-a-deployment-pod-abcdef", "default", R),
    ("max-name-253", "p" * 253, "default", R),
    ("max-namespace-63", "web", NS63, R),
    ("max-release-53", "web", "default", R53),
    ("max-release-52", "web", "default", R52),
    ("all-max", "p" * 253, NS63, R53),
    ("digits", "0", "1", "vc-0-m-1"),
]


def _vcluster(tmp_path: Path, release: str) -> VCluster:
    host = SimpleNamespace(kubeconfig_path=tmp_path / "host.kubeconfig", context=None)
    return VCluster(host, release, release, kubeconfig_path=tmp_path / "kc", api_client=None,  # type: ignore[arg-type]
                    server="https://127.0.0.1:1", forward=None)


def _syncer_host_name(kind: str, name: str, namespace: str, release: str) -> str:
    return syncer_names.host_name_for(kind, name, namespace, TranslatorSettings(release, release))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "namespace", "release"), [c[1:] for c in HOST_NAME_CASES],
                         ids=[c[0] for c in HOST_NAME_CASES])
def test_plugin_host_name_is_the_syncers(tmp_path: Path, kind: str, name: str, namespace: str, release: str) -> None:
    """``vc.host_name(...)`` names the object the syncer creates, for every kind and edge case."""
    syncer = _syncer_host_name(kind, name, namespace, release)
    assert _vcluster(tmp_path, release).host_name(kind, name, namespace) == syncer
    assert _vcluster(tmp_path, release).host_name({"kind": kind, "metadata": {"name": name, "namespace": namespace}}) \
        == syncer
    assert _naming.translate_host_name(name, namespace, release) == syncer


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "namespace", "release"), [c[1:] for c in HOST_NAME_CASES],
                         ids=[c[0] for c in HOST_NAME_CASES])
def test_host_names_are_valid_and_bounded(kind: str, name: str, namespace: str, release: str) -> None:
    got = _syncer_host_name(kind, name, namespace, release)
    assert len(got) <= MAX_NAME
    assert _SUBDOMAIN.match(got), got
    if len(f"{name}-x-{namespace}-x-{release}") <= MAX_NAME:
        assert got == f"{name}-x-{namespace}-x-{release}"  # short names are readable, not hashed


# Host names of objects that exist on hosts today: a change of the rule (on both sides at once) renames them,
# so a restarted syncer of an older version would no longer find its objects.
GOLDEN = [
    ("web", "default", R, "web-x-default-x-vc-1a2b3c-gw0-1"),
    ("a" * 51 + ".b", "default", "vc-1a2b3c-m-1", "a" * 51 + "-36c185dacd"),
    ("a" * 51 + ".bbbbbbbbbbbb", "default", R, "a" * 51 + "-f8e7fff4cf"),
]


@pytest.mark.parametrize(("name", "namespace", "release", "expected"), GOLDEN, ids=["short", "dot-52", "dot-52-tail"])
def test_golden_host_names(tmp_path: Path, name: str, namespace: str, release: str, expected: str) -> None:
    assert _syncer_host_name("Pod", name, namespace, release) == expected
    assert _vcluster(tmp_path, release).host_name("Pod", name, namespace) == expected


def test_every_generated_release_name_fits_the_chart() -> None:
    """The plugin's names are releases the chart accepts (it refuses more than 52 characters)."""
    longest = _naming.make_name("f" * 40, "gw" + "9" * 40, 10**9, prefix="p" * 40)
    assert _naming.is_valid_name(longest)
    assert len(longest) <= 53


# --------------------------------------------------------------------------- labels and annotations

LABEL_KEY_CASES = ["app", "app.kubernetes.io/name", "k" * 63, "example.com/" + "k" * 63, "vcluster.loft.sh/managed-by",
                   "pytest-vcluster.io/run", "a.b-c_d"]


@pytest.mark.parametrize("release", ["r", R, R52, R53], ids=["1", "15", "52", "53"])
@pytest.mark.parametrize("key", LABEL_KEY_CASES)
def test_translated_label_keys_are_valid(release: str, key: str) -> None:
    """The syncer's host label keys are valid qualified names for every release the plugin can make."""
    got = syncer_names.translate_label_key(key, TranslatorSettings(release, release))
    prefix, _, name = got.partition("/")
    assert prefix == syncer_metadata.DOMAIN
    assert len(name) <= MAX_NAME and _QUALIFIED_NAME.match(name), got
    assert syncer_metadata.is_reserved_key(got)


def test_plugin_labels_are_not_the_syncers() -> None:
    """The plugin's namespace labels are valid keys outside the syncer's reserved domain (never rewritten)."""
    for key in _labels.namespace_labels("1a2b3c", "gw0", pid=1, host="h", created=0):
        prefix, _, name = key.partition("/")
        assert len(name) <= MAX_NAME and _QUALIFIED_NAME.match(name) and len(prefix) <= 253
        assert not syncer_metadata.is_reserved_key(key)
    assert not syncer_metadata.is_reserved_key(vcluster_module.CLUSTER_SCOPED_LABEL)


def test_cluster_scoped_objects_carry_the_label_the_plugin_deletes_by(helm: str) -> None:
    objs = render(helm, "sync.fromHost.nodes.mode=all")
    scoped = [o for (kind, _), o in objs.items() if kind in ("ClusterRole", "ClusterRoleBinding")]
    assert len(scoped) == 2
    for obj in scoped:
        assert obj["metadata"]["labels"][vcluster_module.CLUSTER_SCOPED_LABEL] == NAMESPACE


# --------------------------------------------------------------------------- the syncer's environment


class _Recorder(dict[str, str]):
    """An environment that remembers which variables were read."""

    def __init__(self, data: dict[str, str]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def chart_env(helm: str, *sets: str) -> dict[str, str]:
    """The syncer container's environment as the chart renders it (downward API resolved)."""
    env: dict[str, str] = {}
    for item in containers(render(helm, *sets))["syncer"]["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, item
            env[item["name"]] = NAMESPACE
    return env


def load(env: dict[str, str]) -> tuple[syncer_config.Config, set[str]]:
    recorder = _Recorder(env)
    return syncer_config.load_config(recorder, check_files=False), recorder.read


# Variables the syncer reads with a default the chart relies on (the chart does not set them).
DEFAULTED = {"HEALTH_PORT", "KUBELET_ADDRESS", "KUBELET_PORT"}


def test_every_variable_the_chart_sets_is_read_by_the_syncer(helm: str) -> None:
    env = chart_env(helm)
    _, read = load(env)
    assert set(env) - read == set(), "the chart sets variables the syncer never reads"
    assert read - set(env) == DEFAULTED, "the syncer reads variables the chart does not set"


def test_the_chart_env_is_a_valid_syncer_config(helm: str) -> None:
    cfg, _ = load(chart_env(helm))
    assert cfg.vcluster_name == cfg.service_name == RELEASE
    assert cfg.host_namespace == NAMESPACE
    assert cfg.workload_service_account == f"vc-workload-{RELEASE}"
    objs = render(helm)
    assert ("ServiceAccount", cfg.workload_service_account) in objs
    assert ("Service", cfg.service_name) in objs


# (chart value, value to set, Config attribute, its value then); the default must give something else.
SWITCHES: list[tuple[str, str, str, Any]] = [
    ("sync.toHost.configMaps.all", "true", "sync_all_configmaps", True),
    ("sync.toHost.secrets.all", "true", "sync_all_secrets", True),
    ("sync.toHost.networkPolicies.enabled", "true", "sync_network_policies", True),
    ("sync.fromHost.nodes.mode", "all", "sync_nodes_mode", "all"),
    ("sync.fromHost.storageClasses.enabled", "true", "sync_storage_classes", True),
    ("sync.fromHost.events.enabled", "false", "sync_events", False),
    ("syncer.logLevel", "debug", "log_level", "DEBUG"),
    ("clusterDomain", "example.test", "cluster_domain", "example.test"),
    ("coredns.enabled", "false", "coredns.enabled", False),
    ("coredns.image.pullPolicy", "Never", "coredns.pull_policy", "Never"),
    ("coredns.image.tag", "v9", "coredns.image", "registry.k8s.io/coredns/coredns:v9"),
    ("coredns.resources.requests.cpu", "7m", "coredns.resources", {"requests": {"cpu": "7m", "memory": "30Mi"}}),
]
# Switches under sync.* that reach no variable (none today; a new one must be wired or listed here).
NOT_WIRED: set[str] = set()


def _attr(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize(("value", "setting", "attribute", "expected"), SWITCHES, ids=[s[0] for s in SWITCHES])
def test_chart_switch_reaches_the_syncer_config(helm: str, value: str, setting: str, attribute: str,
                                                expected: Any) -> None:
    default_env, changed_env = chart_env(helm), chart_env(helm, f"{value}={setting}")
    changed_vars = {k for k in changed_env if changed_env[k] != default_env.get(k)}
    assert len(changed_vars) == 1, f"{value} changes {sorted(changed_vars)}"
    assert _attr(load(default_env)[0], attribute) != expected
    assert _attr(load(changed_env)[0], attribute) == expected


def _leaves(tree: dict[str, Any], prefix: str) -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}"
        out |= _leaves(value, path) if isinstance(value, dict) else {path}
    return out


def test_every_sync_switch_is_covered() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    switches = _leaves(values["sync"], "sync")
    assert switches - NOT_WIRED == {s[0] for s in SWITCHES if s[0].startswith("sync.")}
    assert NOT_WIRED <= switches, "a switch listed as not wired is gone: drop it from NOT_WIRED"
    assert not switches & {s[0] for s in SWITCHES} & NOT_WIRED


# --------------------------------------------------------------------------- the kubeconfig Secret and ports


def _kubeconfig_secret(helm: str) -> dict[str, Any]:
    return render(helm)[("Secret", f"vc-{RELEASE}")]


def test_plugin_reads_the_kubeconfig_secret_the_chart_writes(helm: str) -> None:
    secret = _kubeconfig_secret(helm)
    data = secret_data(secret)
    config = _kubeconfig.from_secret(secret["data"], name="x")
    cluster, user = _kubeconfig.current(config)
    assert user["token"] == data["token"].decode()
    assert cluster["certificate-authority-data"].encode() == secret["data"]["certificate-authority"].encode()
    # Without "config", the plugin falls back on "token" + "certificate-authority": the same cluster.
    fallback = _kubeconfig.from_secret({k: v for k, v in secret["data"].items() if k != "config"}, name="x")
    assert _kubeconfig.current(fallback) == (cluster, user)


def test_ports(helm: str, tmp_path: Path) -> None:
    objs = render(helm)
    by_name = containers(objs)
    assert [p["containerPort"] for p in by_name["kube-apiserver"]["ports"]] == [vcluster_module.API_PORT]
    port = objs[("Service", RELEASE)]["spec"]["ports"][0]
    assert (port["port"], port["targetPort"]) == (vcluster_module.SERVICE_PORT, vcluster_module.API_PORT)
    cfg, _ = load(chart_env(helm))
    syncer = by_name["syncer"]
    assert [p["containerPort"] for p in syncer["ports"]] == [cfg.health_port]
    assert syncer["readinessProbe"]["httpGet"]["port"] == syncer["livenessProbe"]["httpGet"]["port"] == cfg.health_port
    assert cfg.virtual_server.endswith(f":{vcluster_module.API_PORT}")
    # The kubeconfig's placeholder server is where the standalone kubeconfig/port-forward command point.
    server = _kubeconfig.server_of(_kubeconfig.load(secret_data(_kubeconfig_secret(helm))["config"]))
    vc = _vcluster(tmp_path, RELEASE)
    assert server == "https://localhost:8443"
    assert vc.port_forward_command.endswith(f" 8443:{vcluster_module.API_PORT}")
