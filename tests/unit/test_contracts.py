"""The contract between the three parts: the plugin (pytest_vcluster), the syncer (vcluster_syncer) and the
chart (chart/, rendered with `helm template`).

Each shared rule is defined once, in ``syncer/vcluster_syncer/contract.py`` (``contract`` below), which the
syncer imports and the plugin loads (``pytest_vcluster/_contract.py``). Every check calls the real code of
the parts on edge-case tables; none re-derives a rule. A rule that changes on one side alone fails here:
host names of virtual objects, the syncer's environment variables that the chart sets (and every chart switch
under ``sync.*`` -> the variable -> the syncer's config), the name and keys of the kubeconfig Secret ``vc-R``,
label keys and ports.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import test_chart
import yaml
from test_chart import CHART, NAMESPACE, RELEASE, containers, helm_template, render, secret_data
from vcluster_syncer import config as syncer_config
from vcluster_syncer import contract
from vcluster_syncer.translate import metadata as syncer_metadata
from vcluster_syncer.translate import names as syncer_names
from vcluster_syncer.translate.settings import TranslatorSettings

from pytest_vcluster.core import cleanup as _cleanup
from pytest_vcluster.core import contract as _contract
from pytest_vcluster.core import kubeconfig as _kubeconfig
from pytest_vcluster.core import labels as _labels
from pytest_vcluster.core import naming as _naming
from pytest_vcluster.core import vcluster as vcluster_module
from pytest_vcluster.core.vcluster import VCluster

helm = test_chart.helm  # the fixture: path of a helm binary (tests fail without one, as in test_chart.py)

# Kinds the syncer creates on the host under a translated name.
KINDS = ("Pod", "Service", "Endpoints", "ConfigMap", "Secret", "PersistentVolumeClaim", "NetworkPolicy")
MAX_NAME = contract.NAME_LIMIT
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
R53 = "vc-" + "r" * 50  # one more than the chart accepts (Helm's own limit)
R52 = "vc-" + "r" * 49  # the longest release the chart and the plugin accept
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
    assert contract.host_name(name, namespace, release) == syncer


def test_the_plugin_loads_the_syncers_contract() -> None:
    """One file: in a checkout the plugin loads syncer/vcluster_syncer/contract.py, the module the syncer imports."""
    assert Path(_contract.contract.__file__).resolve() == Path(contract.__file__).resolve()
    assert _contract.contract.host_name is not contract.host_name  # loaded by path, not via vcluster_syncer


def test_the_wheel_ships_the_contract_where_the_plugin_looks() -> None:
    """pyproject.toml's force-include puts syncer/vcluster_syncer where ``_contract.CANDIDATES[0]`` expects it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the backport, from the test extra
        import tomli as tomllib

    repo = CHART.parent
    shipped = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "force-include"]
    wheel_path = repo / shipped["syncer/vcluster_syncer"] / "contract.py"  # the wheel's root holds the package
    assert _contract.CANDIDATES[0] == wheel_path
    assert _contract.CANDIDATES[1] == repo / "syncer" / "vcluster_syncer" / "contract.py"


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


def test_release_names_the_plugin_makes_or_accepts_fit_the_chart(helm: str) -> None:
    """The chart refuses releases over ``contract.MAX_RELEASE_NAME`` characters; the plugin never makes one."""
    longest = _naming.make_name("f" * 40, "gw" + "9" * 40, 10**9, prefix="p" * 40)
    assert _naming.is_valid_name(longest) and len(longest) <= contract.MAX_RELEASE_NAME
    assert _naming.is_valid_name(R52) and len(R52) == contract.MAX_RELEASE_NAME
    assert not _naming.is_valid_name(R53)
    assert helm_template(helm, release=R52).returncode == 0
    refused = helm_template(helm, release=R53)
    assert refused.returncode != 0 and "at most 52" in refused.stderr


# --------------------------------------------------------------------------- labels and annotations

LABEL_KEY_CASES = ["app", "app.kubernetes.io/name", "k" * 63, "example.com/" + "k" * 63, "vcluster.loft.sh/managed-by",
                   "pytest-vcluster.io/run", "a.b-c_d"]


@pytest.mark.parametrize("release", ["r", R, R52, R53], ids=["1", "15", "52", "53"])
@pytest.mark.parametrize("key", LABEL_KEY_CASES)
def test_translated_label_keys_are_valid(release: str, key: str) -> None:
    """The syncer's host label keys are valid qualified names for every release the plugin can make."""
    got = syncer_names.translate_label_key(key, TranslatorSettings(release, release))
    prefix, _, name = got.partition("/")
    assert prefix == syncer_metadata.DOMAIN == contract.SYNCER_DOMAIN
    assert len(name) <= MAX_NAME and _QUALIFIED_NAME.match(name), got
    assert syncer_metadata.is_reserved_key(got)


def test_syncer_label_and_annotation_keys_are_the_contracts() -> None:
    assert (syncer_metadata.MANAGED_BY, syncer_metadata.NAMESPACE_LABEL, syncer_metadata.FAKE_NODE_LABEL) == (
        contract.LABEL_MANAGED_BY, contract.LABEL_NAMESPACE, contract.LABEL_FAKE_NODE)
    assert (syncer_metadata.ANN_NAME, syncer_metadata.ANN_NAMESPACE, syncer_metadata.ANN_UID,
            syncer_metadata.ANN_KIND) == (contract.ANNOTATION_OBJECT_NAME, contract.ANNOTATION_OBJECT_NAMESPACE,
                                          contract.ANNOTATION_OBJECT_UID, contract.ANNOTATION_OBJECT_KIND)
    settings = TranslatorSettings(R, R)
    assert syncer_metadata.marker_labels("team-a", settings) == {contract.LABEL_MANAGED_BY: R,
                                                                 contract.LABEL_NAMESPACE: "team-a"}


def test_plugin_labels_are_not_the_syncers() -> None:
    """The plugin's namespace labels are valid keys outside the syncer's reserved domain (never rewritten)."""
    for key in _labels.namespace_labels("1a2b3c", "gw0", pid=1, host="h", created=0):
        prefix, _, name = key.partition("/")
        assert prefix == contract.PLUGIN_DOMAIN
        assert len(name) <= MAX_NAME and _QUALIFIED_NAME.match(name) and len(prefix) <= 253
        assert not syncer_metadata.is_reserved_key(key)
    assert not syncer_metadata.is_reserved_key(_cleanup.CLUSTER_SCOPED_LABEL)


def test_cluster_scoped_objects_carry_the_label_the_plugin_deletes_by(helm: str) -> None:
    objs = render(helm, "sync.fromHost.nodes.mode=all")
    scoped = [o for (kind, _), o in objs.items() if kind in ("ClusterRole", "ClusterRoleBinding")]
    assert len(scoped) == 2
    for obj in scoped:
        assert obj["metadata"]["labels"][contract.CLUSTER_SCOPED_LABEL] == NAMESPACE
    assert _cleanup.CLUSTER_SCOPED_LABEL == contract.CLUSTER_SCOPED_LABEL


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


#: pod R-0's fields as the kubelet would resolve the chart's downward API references
NODE = "host-node-1"
HOST_IP = "192.0.2.7"
POD_FIELDS = {"metadata.namespace": NAMESPACE, "spec.nodeName": NODE, "status.hostIP": HOST_IP}


def chart_env(helm: str, *sets: str) -> dict[str, str]:
    """The syncer container's environment as the chart renders it (downward API resolved)."""
    env: dict[str, str] = {}
    for item in containers(render(helm, *sets))["syncer"]["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            field = contract.CHART_FIELD_ENV.get(item["name"])
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": field}}, item
            env[item["name"]] = POD_FIELDS[field]
    return env


def load(env: dict[str, str]) -> tuple[syncer_config.Config, set[str]]:
    recorder = _Recorder(env)
    return syncer_config.load_config(recorder, check_files=False), recorder.read


def test_every_variable_the_chart_sets_is_read_by_the_syncer(helm: str) -> None:
    env = chart_env(helm)
    _, read = load(env)
    assert set(env) == contract.CHART_ENV, "the chart sets other variables than the contract says"
    assert read == contract.SYNCER_ENV, "the syncer reads other variables than the contract says"
    assert set(env) - read == set(), "the chart sets variables the syncer never reads"
    assert read - set(env) == set(contract.DEFAULTED_ENV), "the syncer reads variables the chart does not set"


def test_defaulted_variables_mean_what_the_chart_relies_on(helm: str) -> None:
    """Variables the chart leaves unset: the syncer's default is the contract's (the chart's probes use it)."""
    env = chart_env(helm)
    assert load(env)[0] == load({**env, **contract.DEFAULTED_ENV})[0]


def test_the_chart_env_is_a_valid_syncer_config(helm: str) -> None:
    cfg, _ = load(chart_env(helm))
    assert cfg.vcluster_name == cfg.service_name == RELEASE
    assert cfg.host_namespace == NAMESPACE
    assert (cfg.node_name, cfg.host_ip) == (NODE, HOST_IP)
    assert cfg.workload_service_account == contract.workload_service_account(RELEASE)
    assert cfg.virtual_server == contract.VIRTUAL_SERVER
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
    ("syncer.image.tag", "9.9.9", "syncer_image", "ghcr.io/pytest-vcluster/syncer:9.9.9"),
]


def _attr(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize(("value", "setting", "attribute", "expected"), SWITCHES, ids=[s[0] for s in SWITCHES])
def test_chart_switch_reaches_the_syncer_config(helm: str, value: str, setting: str, attribute: str,
                                                expected: Any) -> None:
    default_env, changed_env = chart_env(helm), chart_env(helm, f"{value}={setting}")
    changed_vars = {k for k in changed_env if changed_env[k] != default_env.get(k)}
    assert changed_vars == {_variable_of(value)}
    assert _attr(load(default_env)[0], attribute) != expected
    assert _attr(load(changed_env)[0], attribute) == expected


def _variable_of(value: str) -> str:
    """The variable the contract says the chart sets from ``value`` (or from a subtree holding it)."""
    while value not in contract.CHART_VALUE_ENV:
        assert "." in value, f"the contract names no variable for chart value {value!r}"
        value = value.rpartition(".")[0]
    return contract.CHART_VALUE_ENV[value]


def _leaves(tree: dict[str, Any], prefix: str) -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}"
        out |= _leaves(value, path) if isinstance(value, dict) else {path}
    return out


def test_every_sync_switch_reaches_a_variable() -> None:
    """Every value under ``sync.*`` is in the contract and in the table above; every value the contract names exists."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    switches = _leaves(values["sync"], "sync")
    assert switches == {v for v in contract.CHART_VALUE_ENV if v.startswith("sync.")}
    assert switches <= {s[0] for s in SWITCHES}
    for value in contract.CHART_VALUE_ENV:
        tree: Any = values
        for part in value.split("."):
            assert isinstance(tree, dict) and part in tree, f"contract: chart value {value!r} is not in values.yaml"
            tree = tree[part]


# --------------------------------------------------------------------------- the kubeconfig Secret and ports


def _kubeconfig_secret(helm: str) -> dict[str, Any]:
    return render(helm)[("Secret", contract.kubeconfig_secret_name(RELEASE))]


def test_kubeconfig_secret_keys(helm: str) -> None:
    secret = _kubeconfig_secret(helm)
    assert set(secret["data"]) == set(contract.SECRET_KEYS)
    config = _kubeconfig.load(secret_data(secret)[contract.SECRET_KEY_CONFIG])
    assert _kubeconfig.server_of(config) == contract.KUBECONFIG_SERVER


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
    assert (vcluster_module.API_PORT, vcluster_module.SERVICE_PORT) == (contract.API_PORT, contract.SERVICE_PORT)
    assert [p["containerPort"] for p in by_name["kube-apiserver"]["ports"]] == [contract.API_PORT]
    port = objs[("Service", RELEASE)]["spec"]["ports"][0]
    assert (port["port"], port["targetPort"]) == (contract.SERVICE_PORT, contract.API_PORT)
    cfg, _ = load(chart_env(helm))
    assert (cfg.health_port, cfg.kubelet_port) == (contract.HEALTH_PORT, contract.KUBELET_PORT)
    syncer = by_name["syncer"]
    assert [p["containerPort"] for p in syncer["ports"]] == [cfg.health_port]
    assert syncer["readinessProbe"]["httpGet"]["port"] == syncer["livenessProbe"]["httpGet"]["port"] == cfg.health_port
    assert cfg.virtual_server == contract.VIRTUAL_SERVER
    # The kubeconfig's placeholder server is where the documented port-forward command listens.
    vc = _vcluster(tmp_path, RELEASE)
    assert vc.port_forward_command.endswith(
        f" pod/{contract.control_plane_pod(RELEASE)} {contract.LOCAL_PORT}:{contract.API_PORT}")
    assert ("StatefulSet", RELEASE) in objs  # whose pod is control_plane_pod(R)


def test_the_chart_gives_the_syncer_its_pods_fields(helm: str) -> None:
    """Every downward API variable of the contract, and only those, comes from pod R-0's fields; with CoreDNS
    (the default) its node is the one a fresh cluster shows, without it none (no pod of the cluster runs)."""
    env = containers(render(helm))["syncer"]["env"]
    fields = {item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"] for item in env if "valueFrom" in item}
    assert fields == contract.CHART_FIELD_ENV == {
        "HOST_NAMESPACE": "metadata.namespace", "NODE_NAME": "spec.nodeName", "HOST_IP": "status.hostIP"}
    settings = load(chart_env(helm))[0].settings("uid")
    assert (settings.coredns_node, settings.coredns_node_ips) == (NODE, (HOST_IP,))
    settings = load(chart_env(helm, "coredns.enabled=false"))[0].settings("uid")
    assert (settings.coredns_node, settings.coredns_node_ips) == ("", ())


def test_the_kubelet_port_is_written_in_the_contract_alone(helm: str) -> None:
    """The chart leaves the fake kubelet's address and port to the syncer's defaults, the contract's: it sets
    neither variable, with any option, and no file of the chart writes the port (the chart cannot read
    contract.py; had it a copy, nothing would keep the two equal)."""
    env = chart_env(helm, "sync.fromHost.nodes.mode=all", "sync.fromHost.storageClasses.enabled=true")
    assert {contract.ENV_KUBELET_ADDRESS, contract.ENV_KUBELET_PORT} <= set(contract.DEFAULTED_ENV) - set(env)
    cfg, _ = load(env)
    assert (cfg.kubelet_address, cfg.kubelet_port) == (contract.KUBELET_ADDRESS, contract.KUBELET_PORT)
    files = [path for path in sorted(CHART.rglob("*")) if path.is_file()]
    assert any(path.name == "statefulset.yaml" for path in files)
    for path in files:
        assert str(contract.KUBELET_PORT) not in path.read_text(), f"{path} writes the kubelet port"


def test_coredns_answers_on_the_contracts_port(helm: str) -> None:
    objs = render(helm)
    coredns = containers(objs)["coredns"]
    assert {p["containerPort"] for p in coredns["ports"]} == {contract.DNS_PORT}
    corefile = objs[("ConfigMap", f"{RELEASE}-coredns")]["data"]["Corefile"]
    assert corefile.startswith(f".:{contract.DNS_PORT} {{")


def test_etcd_listens_where_snapshots_and_forks_reach_it(helm: str) -> None:
    by_name = containers(render(helm))
    url = f"http://127.0.0.1:{contract.ETCD_PORT}"
    assert f"--listen-client-urls={url}" in by_name["etcd"]["args"] + by_name["etcd"].get("command", [])
    assert f"--etcd-servers={url}" in by_name["kube-apiserver"]["args"] + by_name["kube-apiserver"].get("command", [])


def test_readiness_waits_for_the_pod_and_secret_the_chart_makes(helm: str) -> None:
    """The plugin's readiness check reads the control-plane pod and the kubeconfig Secret by the names
    the rendered chart gives them (a StatefulSet's first pod is ``<statefulset>-0``)."""
    from kubernetes import client

    from pytest_vcluster.core import ready as _ready

    objs = render(helm)
    statefulsets = [name for kind, name in objs if kind == "StatefulSet"]
    assert len(statefulsets) == 1
    read: list[tuple[str, str]] = []

    class Core:
        def read_namespaced_pod(self, name: str, namespace: str, **kw: Any) -> Any:
            read.append(("Pod", name))
            return client.V1Pod(status=client.V1PodStatus(
                phase="Running", conditions=[client.V1PodCondition(type="Ready", status="True")]))

        def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
            read.append(("Secret", name))
            return objs[("Secret", name)]

    _ready.wait_host_side(Core(), NAMESPACE, RELEASE, _ready.Deadline(5))
    assert read == [("Pod", f"{statefulsets[0]}-0"), ("Secret", contract.kubeconfig_secret_name(RELEASE))]
    assert ("Secret", contract.kubeconfig_secret_name(RELEASE)) in objs


# --------------------------------------------------------------------------- Pod Security


def _admission_defaults(objs: Any) -> dict[str, str] | None:
    """The PodSecurity ``defaults`` of the AdmissionConfiguration kube-apiserver is started with, or None
    when it gets none (checked end to end: flag -> mounted file -> ConfigMap key -> document)."""
    apiserver = containers(objs)["kube-apiserver"]
    paths = [a.partition("=")[2] for a in apiserver["args"] if a.startswith("--admission-control-config-file=")]
    if not paths:
        return None
    (path,) = paths
    volumes = {v["name"]: v for v in objs[("StatefulSet", RELEASE)]["spec"]["template"]["spec"]["volumes"]}
    for mount in apiserver["volumeMounts"]:
        if path.startswith(mount["mountPath"] + "/"):
            config_map = volumes[mount["name"]]["configMap"]
            (item,) = [i for i in config_map["items"] if f"{mount['mountPath']}/{i['path']}" == path]
            document = yaml.safe_load(objs[("ConfigMap", config_map["name"])]["data"][item["key"]])
            break
    else:
        pytest.fail(f"--admission-control-config-file={path} is not a mounted file")
    assert document["kind"] == "AdmissionConfiguration"
    (plugin,) = document["plugins"]
    assert plugin["name"] == "PodSecurity"
    assert plugin["configuration"]["kind"] == "PodSecurityConfiguration"
    assert plugin["configuration"]["exemptions"] == {"usernames": [], "runtimeClasses": [], "namespaces": []}
    return dict(plugin["configuration"]["defaults"])


def test_pod_security_value_levels_and_default_are_the_charts() -> None:
    """The value key, its levels (the schema's enum) and its default (values.yaml) are the contract's."""
    import json

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values[contract.VALUE_POD_SECURITY] == contract.POD_SECURITY_DEFAULT
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert tuple(schema["properties"][contract.VALUE_POD_SECURITY]["enum"]) == contract.POD_SECURITY_LEVELS
    assert contract.POD_SECURITY_LEVELS[0] == "privileged"  # checks nothing: no file, no labels
    assert vcluster_module.pod_security_level({}) == contract.POD_SECURITY_DEFAULT


@pytest.mark.parametrize("level", contract.POD_SECURITY_LEVELS)
def test_both_walls_check_the_level_the_value_names(helm: str, level: str) -> None:
    """The virtual API server's admission defaults (chart) and the host namespace's labels (plugin) are
    the same settings, the contract's, for the level the value names (its default, too)."""
    settings = contract.pod_security_settings(level)
    objs = render(helm, f"{contract.VALUE_POD_SECURITY}={level}")
    assert (_admission_defaults(objs) or {}) == settings
    values = {contract.VALUE_POD_SECURITY: level}
    labels = vcluster_module.pod_security_labels(vcluster_module.pod_security_level(values))
    assert labels == {f"{contract.POD_SECURITY_LABEL_PREFIX}/{k}": v for k, v in settings.items()}
    if level == contract.POD_SECURITY_DEFAULT:
        assert _admission_defaults(render(helm)) is None and settings == {}
    else:
        assert settings["enforce"] == level and settings["enforce-version"] == contract.POD_SECURITY_VERSION
    for key in labels:
        assert _QUALIFIED_NAME.match(key.partition("/")[2]) and not syncer_metadata.is_reserved_key(key)
