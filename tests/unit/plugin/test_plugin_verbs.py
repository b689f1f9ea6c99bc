"""The pure logic behind VCluster's verbs (pytest_vcluster.core.verbs): manifest loading, target and condition
parsing, resource-name resolution, selectors and ports, exec status, and kubectl/helm command lines (with fake
binaries). No cluster."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import (
    CommandError,
    ManifestError,
    UnknownKindError,
    VCluster,
    VClusterError,
    WaitTimeout,
)
from pytest_vcluster.core.run import run
from pytest_vcluster.core.verbs import (
    ClusterVerbs,
    ResourceType,
    _exec_status,
    apply_order,
    condition_met,
    container_port,
    describe_conditions,
    label_selector,
    load_manifests,
    match_resource,
    parse_condition,
    parse_target,
    pick_pod,
    service_target_port,
)

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "widgets.example.com"}}
TWO_DOCS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: one}
---
# only a comment: an empty document
---
apiVersion: v1
kind: Secret
metadata:
  name: two
"""


# ------------------------------------------------------------------------------------------ manifests


def test_dict_is_one_object_copied() -> None:
    objs = load_manifests(CM)
    assert objs == [CM]
    objs[0]["data"]["k"] = "changed"
    assert CM["data"]["k"] == "v", "the caller's dict must not change"


def test_list_of_dicts() -> None:
    assert [o["metadata"]["name"] for o in load_manifests([CM, CRD])] == ["a", "widgets.example.com"]


def test_yaml_text_with_several_documents_skips_empty_ones() -> None:
    objs = load_manifests(TWO_DOCS)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [("ConfigMap", "one"), ("Secret", "two")]


def test_single_line_yaml_is_text_not_a_path() -> None:
    assert load_manifests('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}')[0]["kind"] == \
        "ConfigMap"


def test_file_path_as_str_and_path(tmp_path: Path) -> None:
    file = tmp_path / "m.yaml"
    file.write_text(TWO_DOCS)
    assert len(load_manifests(file)) == 2
    assert len(load_manifests(str(file))) == 2


def test_directory_reads_yaml_yml_json_in_name_order(tmp_path: Path) -> None:
    def cm(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}

    (tmp_path / "b.yml").write_text(json.dumps(cm("b")))
    (tmp_path / "a.yaml").write_text(json.dumps(cm("a")))
    (tmp_path / "c.json").write_text(json.dumps(cm("c"), indent="\t"))  # tabs: JSON, not YAML
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z.yaml").write_text(json.dumps(cm("z")))
    assert [o["metadata"]["name"] for o in load_manifests(tmp_path)] == ["a", "b", "c"]


def test_list_kind_gives_its_items() -> None:
    objs = load_manifests({"apiVersion": "v1", "kind": "List", "items": [CM, CRD]})
    assert [o["kind"] for o in objs] == ["ConfigMap", "CustomResourceDefinition"]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest file .*nope\.yaml does not exist"):
        load_manifests(str(tmp_path / "nope.yaml"))
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifests("manifests/web.yaml")


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no \*\.yaml, \*\.yml or \*\.json file"):
        load_manifests(tmp_path)


def test_bad_yaml_names_source_and_line(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("apiVersion: v1\nkind: [unclosed\n")
    with pytest.raises(ManifestError, match=r"bad\.yaml is not valid YAML: .* at line \d+, column \d+"):
        load_manifests(file)


def test_bad_json_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ManifestError, match=r"x\.json is not valid JSON"):
        load_manifests(tmp_path)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "the object: ConfigMap a has no apiVersion"),
        ({"apiVersion": "v1", "metadata": {"name": "a"}}, "the object: object a has no kind"),
        ({"apiVersion": "v1", "kind": "ConfigMap"}, "the object: ConfigMap has no metadata.name"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "x-"}}, "Pod has no metadata.name"),
    ],
)
def test_object_without_required_fields(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_manifests(doc)


def test_error_names_document_and_item() -> None:
    with pytest.raises(ManifestError, match=r"the manifest text, document 3: Secret has no metadata\.name"):
        load_manifests(TWO_DOCS.replace("  name: two", "  labels: {}"))
    with pytest.raises(ManifestError, match=r"item 2 of the list: a manifest object must be a mapping, not a str"):
        load_manifests([CM, "oops"])  # type: ignore[list-item]


def test_unsupported_type() -> None:
    with pytest.raises(ManifestError, match="cannot apply a int"):
        load_manifests(3)  # type: ignore[arg-type]


def test_apply_order_crds_then_namespaces_then_rest() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert apply_order([widget, CM, ns, CRD]) == ([3], [2, 0, 1])


# ------------------------------------------------------------------------------------ targets, conditions


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("deployment/web", ("deployment", "web")),
        ("crd/widgets.example.com", ("crd", "widgets.example.com")),
        ("deployments.apps/web", ("deployments.apps", "web")),
        (" po/x ", ("po", "x")),
    ],
)
def test_parse_target(target: str, parsed: tuple[str, str]) -> None:
    assert parse_target(target) == parsed


@pytest.mark.parametrize("target", ["web", "/web", "deployment/", "a/b/c", ""])
def test_parse_target_rejects(target: str) -> None:
    with pytest.raises(ValueError, match="is not 'kind/name'"):
        parse_target(target)


TYPES = [
    ResourceType("", "v1", "Pod", "pods", "pod", ("po",)),
    ResourceType("", "v1", "Service", "services", "service", ("svc",)),
    ResourceType("", "v1", "Event", "events", "event", ("ev",)),
    ResourceType("apps", "v1", "Deployment", "deployments", "deployment", ("deploy",)),
    ResourceType("batch", "v1", "Job", "jobs", "job"),
    ResourceType("events.k8s.io", "v1", "Event", "events", "event", ("ev",)),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
                 "customresourcedefinition", ("crd", "crds"), namespaced=False),
    ResourceType("example.com", "v1beta1", "Widget", "widgets", "widget", ("wd",), preferred=False),
    ResourceType("example.com", "v1", "Widget", "widgets", "widget", ("wd",)),
]


@pytest.mark.parametrize(
    ("word", "kind", "api_version"),
    [
        ("deploy", "Deployment", "apps/v1"),
        ("deployment", "Deployment", "apps/v1"),
        ("deployments", "Deployment", "apps/v1"),
        ("Deployment", "Deployment", "apps/v1"),
        ("deployments.apps", "Deployment", "apps/v1"),
        ("crd", "CustomResourceDefinition", "apiextensions.k8s.io/v1"),
        ("customresourcedefinition", "CustomResourceDefinition", "apiextensions.k8s.io/v1"),
        ("po", "Pod", "v1"),
        ("svc", "Service", "v1"),
        ("job", "Job", "batch/v1"),
        ("events", "Event", "v1"),  # the core group wins over events.k8s.io
        ("events.events.k8s.io", "Event", "events.k8s.io/v1"),
        ("widget", "Widget", "example.com/v1"),  # the preferred version
        ("widgets.example.com", "Widget", "example.com/v1"),
        ("wd", "Widget", "example.com/v1"),
    ],
)
def test_match_resource(word: str, kind: str, api_version: str) -> None:
    found = match_resource(word, TYPES)
    assert found is not None
    assert (found.kind, found.api_version) == (kind, api_version)


@pytest.mark.parametrize("word", ["deploymnt", "widgets.other.io", ""])
def test_match_resource_none(word: str) -> None:
    assert match_resource(word, TYPES) is None


@pytest.mark.parametrize(
    ("condition", "parsed"),
    [
        ("Available", ("Available", "True")),
        ("condition=Ready", ("Ready", "True")),
        ("Ready=False", ("Ready", "False")),
        (" Complete ", ("Complete", "True")),
    ],
)
def test_parse_condition(condition: str, parsed: tuple[str, str]) -> None:
    assert parse_condition(condition) == parsed


@pytest.mark.parametrize("condition", ["", "=True", "Ready="])
def test_parse_condition_rejects(condition: str) -> None:
    with pytest.raises(ValueError, match="is not a condition type"):
        parse_condition(condition)


def deployment(available: str, generation: int = 1, observed: int | None = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        {"type": "Available", "status": available, "reason": "MinimumReplicasAvailable",
         "message": "Deployment has minimum availability."},
    ]}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "web", "generation": generation}, "status": status}


def test_condition_met() -> None:
    assert condition_met(deployment("True"), "Available")
    assert condition_met(deployment("True"), "available", "true")
    assert not condition_met(deployment("False"), "Available")
    assert condition_met(deployment("False"), "Available", "False")
    assert not condition_met(deployment("True"), "Ready"), "no such condition"
    assert not condition_met({"metadata": {"name": "x"}}, "Ready"), "no status"
    assert condition_met(deployment("True", observed=None), "Available"), "no observedGeneration: trusted"


def test_condition_of_an_older_generation_is_not_met() -> None:
    assert not condition_met(deployment("True", generation=2, observed=1), "Available")
    crd = {"metadata": {"generation": 3}, "status": {"conditions": [
        {"type": "Established", "status": "True", "observedGeneration": 2}]}}
    assert not condition_met(crd, "Established")
    crd["status"]["conditions"][0]["observedGeneration"] = 3
    assert condition_met(crd, "Established")


def test_describe_conditions() -> None:
    assert describe_conditions(deployment("False")) == (
        "conditions Progressing=True (NewReplicaSetAvailable), "
        "Available=False (MinimumReplicasAvailable: Deployment has minimum availability.)"
    )
    assert describe_conditions({"status": {"phase": "Pending"}}) == "no conditions; phase Pending"
    assert describe_conditions(deployment("True", generation=2)).endswith(
        "; generation 2 not observed yet (observedGeneration 1)")
    assert describe_conditions(None) == "no object"


# -------------------------------------------------------------------------------- selectors, ports, pods


def test_label_selector() -> None:
    assert label_selector({"app": "web", "tier": "front"}) == "app=web,tier=front"
    assert label_selector({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["a", "b"]},
        {"key": "x", "operator": "NotIn", "values": ["c"]},
        {"key": "y", "operator": "Exists"},
        {"key": "z", "operator": "DoesNotExist"},
    ]}) == "app=web,env in (a,b),x notin (c),y,!z"


SERVICE = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [
    {"name": "http", "port": 80, "targetPort": 8080},
    {"name": "admin", "port": 81, "targetPort": "admin"},
    {"port": 82},
]}}


def test_service_target_port() -> None:
    assert service_target_port(SERVICE, 80) == 8080
    assert service_target_port(SERVICE, "http") == 8080
    assert service_target_port(SERVICE, "80") == 8080
    assert service_target_port(SERVICE, 81) == "admin"
    assert service_target_port(SERVICE, 82) == 82, "targetPort defaults to port"
    with pytest.raises(VClusterError, match=r"service default/web has no port 90 \(its ports: 80 \(http\), "
                                             r"81 \(admin\), 82\)"):
        service_target_port(SERVICE, 90)


def test_container_port() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "ports": [{"name": "admin", "containerPort": 9000}]}]}}
    assert container_port(pod, 8080) == 8080
    assert container_port(pod, "8080") == 8080
    assert container_port(pod, "admin") == 9000
    with pytest.raises(VClusterError, match="pod default/p has no container port named 'web'"):
        container_port(pod, "web")


def pod(name: str, phase: str = "Running", ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase,
                                         "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_pick_pod_prefers_running_ready_not_deleted() -> None:
    assert pick_pod([]) is None
    assert pick_pod([pod("a", "Pending"), pod("b", "Succeeded")]) is None
    chosen = pick_pod([pod("a", ready=False), pod("c"), pod("b", deleting=True)])
    assert chosen is not None and chosen["metadata"]["name"] == "c"
    chosen = pick_pod([pod("z", ready=False), pod("y", ready=False)])
    assert chosen is not None and chosen["metadata"]["name"] == "y"


@pytest.mark.parametrize(
    ("channel", "status"),
    [
        ("{metadata: {}, status: Success}", (0, "")),
        (json.dumps({"status": "Failure", "message": "command terminated with non-zero exit code: exit 3",
                     "reason": "NonZeroExitCode",
                     "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}),
         (3, "command terminated with non-zero exit code: exit 3")),
        (json.dumps({"status": "Failure", "reason": "InternalError",
                     "message": 'exec: "nope": executable file not found in $PATH'}),
         (None, 'exec: "nope": executable file not found in $PATH')),
        ("", (None, "the exec stream ended without a status")),
    ],
)
def test_exec_status(channel: str, status: tuple[int | None, str]) -> None:
    assert _exec_status(channel) == status


# ---------------------------------------------------------------------------------------- commands


def test_run_failure_names_command_exit_and_stderr() -> None:
    command = [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
    with pytest.raises(CommandError, match=r"`.*python.* -c .*` failed \(exit 3\): boom$") as info:
        run(command, check=True, timeout=30)
    assert (info.value.returncode, info.value.stderr, info.value.command) == (3, "boom\n", command)
    assert run(command, check=False, timeout=30) == ""


def test_run_input_and_timeout() -> None:
    assert run([sys.executable, "-c", "print(input().upper())"], input="hi\n", timeout=30) == "HI\n"
    with pytest.raises(CommandError, match=r"did not finish within 1s") as info:
        run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert info.value.returncode is None


def fake_binary(folder: Path, name: str, body: str) -> Path:
    """An executable ``name`` in ``folder`` that records its arguments as JSON on stdout (then ``body``)."""
    path = folder / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class Handle(ClusterVerbs):
    """The attributes the mixin needs, without a cluster."""

    def __init__(self, tmp_path: Path) -> None:
        self.kubeconfig_path = tmp_path / "vc.kubeconfig"
        self.kubeconfig_path.write_text("{}")
        self.name = "vc1"
        self.api_client = None
        self.host = NS(load_image=lambda name: self.loaded.append(name))
        self.loaded: list[str] = []


def test_kubectl_runs_with_the_clusters_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_binary(bin_dir, "kubectl", "print(json.dumps({'argv': sys.argv[1:], 'stdin': sys.stdin.read(), "
                                    "'cache': os.environ.get('KUBECACHEDIR')}))")
    monkeypatch.setenv("PATH", str(bin_dir))
    vc = Handle(tmp_path)
    seen = json.loads(vc.kubectl("get", "pods", Path("x"), input="in"))
    assert seen["argv"] == ["--kubeconfig", str(vc.kubeconfig_path), "get", "pods", "x"]
    assert seen["stdin"] == "in"
    assert seen["cache"] == str(tmp_path / ".vc1.verbs" / "kube-cache"), "a discovery cache of its own"


def test_missing_kubectl_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VClusterError, match=r"needs kubectl, but it is not on PATH: install it \(https://"):
        Handle(tmp_path).kubectl("version")


def test_helm_from_helm_bin_and_helm_install_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_binary(tmp_path, "my-helm", """\
args = sys.argv[1:]
values = args[args.index('--values') + 1] if '--values' in args else None
print('WARNING: noise first')
print(json.dumps({'name': args[4], 'args': args, 'values': open(values).read() if values else None,
                  'info': {'status': 'deployed'}}))""")
    monkeypatch.setenv("HELM_BIN", str(fake))
    monkeypatch.setenv("PATH", "")
    vc = Handle(tmp_path)
    release = vc.helm_install("web", tmp_path / "chart", namespace="apps", values={"replicas": 2}, timeout=120)
    assert release["info"]["status"] == "deployed"
    args = release["args"]
    assert args[:2] == ["--kubeconfig", str(vc.kubeconfig_path)]
    assert args[2:] == ["upgrade", "--install", "web", str(tmp_path / "chart"), "--namespace", "apps",
                        "--create-namespace", "--output", "json", "--timeout", "120s", "--values", args[-2],
                        "--wait"]
    assert release["values"] == "replicas: 2\n"
    assert "--wait" not in vc.helm_install("web", "chart", wait=False)["args"]


def test_missing_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_BIN", str(tmp_path / "no-helm"))
    with pytest.raises(VClusterError, match="needs the Helm CLI"):
        Handle(tmp_path).helm("version")


def test_caches_are_emptied_after_a_reset(tmp_path: Path) -> None:
    vc = Handle(tmp_path)
    cache = Path(vc._command_env()["KUBECACHEDIR"])
    cache.mkdir()
    (cache / "stale").write_text("a CRD of the test before")
    vc._verbs_dynamic = "a client with that CRD in its discovery"
    assert Path(vc._command_env()["KUBECACHEDIR"]) == cache
    assert (cache / "stale").exists() and vc._verbs_dynamic is not None, "kept while the cluster was not reset"
    vc.resets = 1  # type: ignore[attr-defined]  # what VCluster.reset() counts
    assert Path(vc._command_env()["KUBECACHEDIR"]) == cache
    assert not cache.exists() and vc._verbs_dynamic is None


def test_load_image_delegates_to_the_host(tmp_path: Path) -> None:
    vc = Handle(tmp_path)
    vc.load_image("example/app:1")
    assert vc.loaded == ["example/app:1"]


def test_vcluster_has_the_verbs() -> None:
    for verb in ("apply", "wait_for", "kubectl", "helm", "helm_install", "logs", "exec", "port_forward",
                 "load_image"):
        assert callable(getattr(VCluster, verb)), verb


# ------------------------------------------------------------------------ wait_for with a fake dynamic client


class FakeDynamic:
    """Answers GETs of one object from ``states`` in turn (the last repeats); an exception is raised."""

    def __init__(self, states: list[Any]) -> None:
        self.states = states
        self.gets = 0
        deploy = NS(group="apps", api_version="v1", kind="Deployment", name="deployments",
                    singular_name="deployment", short_names=["deploy"], namespaced=True, preferred=True)
        self.resources = NS(search=lambda: [[deploy]], invalidate_cache=lambda: None)

    def get(self, resource: Any, name: str, namespace: str | None) -> Any:
        state = self.states[min(self.gets, len(self.states) - 1)]
        self.gets += 1
        if isinstance(state, Exception):
            raise state
        return NS(to_dict=lambda: state)


def waiting_handle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, states: list[Any]) -> Handle:
    vc = Handle(tmp_path)
    vc._verbs_dynamic = FakeDynamic(states)
    vc._verbs_generation = 0
    monkeypatch.setattr(ClusterVerbs, "_events_text", lambda self, kind, name, ns: (
        f"events of {kind.lower()}/{name}:\n  Normal ScalingReplicaSet: up"))
    return vc


def test_wait_for_condition_after_404(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vc = waiting_handle(tmp_path, monkeypatch, [ApiException(status=404, reason="Not Found"), deployment("False"),
                                                deployment("True")])
    assert vc.wait_for("deploy/web", "Available", timeout=10)["status"]["conditions"][1]["status"] == "True"


def test_wait_for_callable_errors_are_not_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vc = waiting_handle(tmp_path, monkeypatch, [{"status": {}}, {"status": {"readyReplicas": 2}}])
    obj = vc.wait_for("deployments/web", lambda d: d["status"]["readyReplicas"] == 2, timeout=10)
    assert obj["status"]["readyReplicas"] == 2


def test_wait_for_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vc = waiting_handle(tmp_path, monkeypatch, [deployment("True"), ApiException(status=404, reason="Not Found")])
    assert vc.wait_for("deployment/web", "delete", timeout=10) == deployment("True")
    vc = waiting_handle(tmp_path, monkeypatch, [ApiException(status=404, reason="Not Found")])
    assert vc.wait_for("deployment/web", "delete", timeout=10) == {}


def test_wait_for_timeout_says_conditions_and_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vc = waiting_handle(tmp_path, monkeypatch, [deployment("False")])
    with pytest.raises(WaitTimeout) as info:
        vc.wait_for("deploy/web", "Available", namespace="apps", timeout=0.6)
    assert str(info.value) == (
        "timed out after 1s waiting for deployment/web in namespace apps to be Available; last seen: conditions "
        "Progressing=True (NewReplicaSetAvailable), Available=False (MinimumReplicasAvailable: Deployment has "
        "minimum availability.)\nevents of deployment/web:\n  Normal ScalingReplicaSet: up"
    )


def test_wait_for_unknown_type_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vc = waiting_handle(tmp_path, monkeypatch, [deployment("True")])
    with pytest.raises(UnknownKindError, match='virtual cluster vc1 has no resource type "deploymnt"'):
        vc.wait_for("deploymnt/web", "Available")


def test_wait_for_other_api_errors_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vc = waiting_handle(tmp_path, monkeypatch, [ApiException(status=403, reason="Forbidden")])
    with pytest.raises(ApiException):
        vc.wait_for("deploy/web", "Available", timeout=5)

