"""VCluster's verbs on the real host (`hack/host up`): apply, wait_for, kubectl, helm/helm_install, logs, exec,
port_forward and load_image, each in the plugin's `vcluster` fixture (a fresh cluster per test).

Images are the ones the host built (`hack/host images`): nothing is pulled; `load_image` builds a small image on
the host's docker (`hack/host docker`) and removes it at the end. kubectl and helm come from PATH
(`export PATH="$(hack/host tools):$PATH"`, as hack/_setup.sh does).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import ApplyError, CommandError, ExecError, UnknownKindError, VClusterError, WaitTimeout

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import suffix  # noqa: E402

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SHELL = versions.SHELL_IMAGE
HTTP = versions.HTTP_IMAGE
GREETING = "hello from pytest-vcluster httpd"
#: pods, Deployments, CRDs: generous on a two-core host shared with other runs
READY = 240.0

CRD_AND_WIDGET = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
spec:
  size: 3
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  colour: blue
"""


def web(name: str = "web", *, replicas: int = 1) -> list[dict[str, Any]]:
    """A Deployment of busybox httpd (port 8080, named ``http``) that logs a line first, and its Service
    (port 80 -> targetPort ``http``)."""
    labels = {"app": name}
    container = {
        "name": "httpd", "image": HTTP, "imagePullPolicy": "Never",
        "command": ["sh", "-c", f"echo started-{name}; exec httpd -f -v -p 8080 -h /www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": labels, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}},
    ]


def shell_pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, **spec, "containers": [
                {"name": "main", "image": SHELL, "imagePullPolicy": "Never", "command": ["sh", "-c", script]}]}}


def get(url: str, timeout: float = 60) -> str:
    """GET ``url`` (retrying while a forward's first stream opens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=15) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# ------------------------------------------------------------------------------------------------ apply


def test_apply_crd_and_its_object_in_one_call_and_again(vcluster: Any, tmp_path: Path) -> None:
    applied = vcluster.apply(CRD_AND_WIDGET)
    assert [(o["kind"], o["metadata"]["name"]) for o in applied] == [
        ("CustomResourceDefinition", "widgets.example.com"), ("Widget", "w1"), ("ConfigMap", "settings")]
    assert applied[1]["metadata"]["namespace"] == "default"
    assert applied[1]["spec"] == {"size": 3}
    assert applied[1]["metadata"]["managedFields"][0]["manager"] == "pytest-vcluster"
    assert applied[1]["metadata"]["managedFields"][0]["operation"] == "Apply"

    # idempotent: applying the same again changes nothing (server-side apply of the same fields is a no-op;
    # the CRD's first answer predates its status, so its resourceVersion is compared from the second on)
    again = vcluster.apply(CRD_AND_WIDGET)
    third = vcluster.apply(CRD_AND_WIDGET)
    assert [o["metadata"]["generation"] for o in again[:2]] == [o["metadata"]["generation"] for o in applied[:2]]
    assert [o["metadata"]["resourceVersion"] for o in again[1:]] == [o["metadata"]["resourceVersion"]
                                                                      for o in applied[1:]]
    assert [o["metadata"]["resourceVersion"] for o in third] == [o["metadata"]["resourceVersion"] for o in again]

    # a changed field is applied, from a directory (files in name order), into the namespace given
    (tmp_path / "b-widget.yaml").write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n"
                                            "spec: {size: 5}\n")
    (tmp_path / "a-namespace.json").write_text('{"apiVersion": "v1", "kind": "Namespace", '
                                               '"metadata": {"name": "apps"}}')
    changed = vcluster.apply(tmp_path, namespace="apps")
    assert [(o["kind"], o["metadata"].get("namespace")) for o in changed] == [("Namespace", None), ("Widget", "apps")]
    custom = client.CustomObjectsApi(vcluster.api_client)
    assert custom.get_namespaced_custom_object("example.com", "v1", "apps", "widgets", "w1")["spec"]["size"] == 5
    assert custom.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w1")["spec"]["size"] == 3

    # the object the server refuses, and a kind it does not serve, say so at once
    # (a field of the wrong type in an apply patch is a 500 of the API server: raised at once all the same)
    with pytest.raises(ApplyError, match=r"refused Widget default/bad \(example\.com/v1\): HTTP 500 Internal "
                                         r"Server Error: failed to create typed patch object .*\.spec\.size: "
                                         r"expected numeric"):
        vcluster.apply({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"},
                        "spec": {"size": "big"}})
    with pytest.raises(ApplyError, match=r"refused ConfigMap default/Bad_Name \(v1\): HTTP 422 Unprocessable "
                                         r"Entity: ConfigMap \"Bad_Name\" is invalid: metadata\.name: Invalid value"):
        vcluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}})
    with pytest.raises(UnknownKindError, match="serves no kind Gadget in example.com/v1"):
        vcluster.apply({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})


# ---------------------------------------------------------------------------------------------- wait_for


def test_wait_for_conditions_delete_callable_and_timeout(vcluster: Any) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
           "spec": {"backoffLimit": 0, "template": {"spec": {
               "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
               "containers": [{"name": "main", "image": SHELL, "imagePullPolicy": "Never",
                               "command": ["sh", "-c", "echo done"]}]}}}}
    vcluster.apply([*web(), job])
    vcluster.apply(CRD_AND_WIDGET.split("---\n")[0])  # the CRD alone

    assert vcluster.wait_for("crd/widgets.example.com", "Established")["spec"]["group"] == "example.com"
    deployment = vcluster.wait_for("deployment/web", "Available", timeout=READY)
    assert deployment["status"]["availableReplicas"] == 1
    assert vcluster.wait_for("deploy/web", "condition=Available")["metadata"]["name"] == "web"
    assert vcluster.wait_for("job/once", "Complete", timeout=READY)["status"]["succeeded"] == 1
    pod_name = client.CoreV1Api(vcluster.api_client).list_namespaced_pod(
        "default", label_selector="app=web").items[0].metadata.name
    assert vcluster.wait_for(f"po/{pod_name}", "Ready")["status"]["phase"] == "Running"

    # a callable on the object (a KeyError while a field is missing is "not yet")
    scaled = vcluster.wait_for("deployments.apps/web", lambda d: d["status"]["readyReplicas"] >= 1)
    assert scaled["status"]["readyReplicas"] == 1

    # a custom resource by its short name, and "delete" (kubectl's discovery cache now has widgets: see test_kubectl)
    vcluster.apply(CRD_AND_WIDGET.split("---\n")[1])
    assert vcluster.kubectl("get", "widgets", "-o", "name") == "widget.example.com/w1\n"
    assert vcluster.wait_for("wd/w1", lambda w: w["spec"]["size"] == 3)["kind"] == "Widget"
    client.CustomObjectsApi(vcluster.api_client).delete_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", "w1")
    gone = vcluster.wait_for("widget/w1", "delete", timeout=60)
    assert gone.get("metadata", {}).get("name") in (None, "w1")
    assert vcluster.wait_for("widget/never-was", "delete", timeout=5) == {}

    # a timeout says what was awaited, the conditions it saw last, and the object's events
    with pytest.raises(WaitTimeout) as info:
        vcluster.wait_for("deployment/web", "Ready", timeout=2)
    message = str(info.value)
    assert message.startswith("timed out after 2s waiting for deployment/web in namespace default to be Ready; "
                              "last seen: conditions "), message
    assert re.search(r"Available=True \(MinimumReplicasAvailable: Deployment has minimum availability\.\)",
                     message), message
    assert re.search(r"Progressing=True \(NewReplicaSetAvailable: ReplicaSet \"web-\w+\" has successfully "
                     r"progressed\.\)", message), message
    assert re.search(r"\nevents of deployment/web:\n  Normal ScalingReplicaSet: Scaled up replica set web-\w+ "
                     r"(from 0 )?to 1", message), message

    with pytest.raises(WaitTimeout, match=r"waiting for pod/nope in namespace default to be Ready; last seen: "
                                          r"'HTTP 404 Not Found: pods \"nope\" not found'\nevents of pod/nope:\n"
                                          r"  \(none\)$"):
        vcluster.wait_for("pod/nope", "Ready", timeout=1)
    with pytest.raises(UnknownKindError, match='has no resource type "deploymnt"'):
        vcluster.wait_for("deploymnt/web", "Available")


# ----------------------------------------------------------------------------------------------- kubectl


def test_kubectl(vcluster: Any) -> None:
    """Also in a cluster recycled from test_wait_for... (``resets`` > 0): its CRD is gone, and neither kubectl's
    discovery cache nor the dynamic client's of the handle may still have it."""
    print(f"cluster {vcluster.name}: reset {getattr(vcluster, 'resets', 0)} time(s) before this test")
    assert vcluster.kubectl("get", "namespace", "default", "-o", "name") == "namespace/default\n"
    out = vcluster.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: piped}\n")
    assert out.strip() == "configmap/piped created"
    assert vcluster.kubectl("get", "configmap", "piped", "-o", "jsonpath={.metadata.name}") == "piped"

    with pytest.raises(CommandError) as info:
        vcluster.kubectl("get", "widgets")
    error = info.value
    assert error.returncode == 1
    assert re.fullmatch(r"`\S*kubectl --kubeconfig \S+ get widgets` failed \(exit 1\): error: the server doesn't "
                        r"have a resource type \"widgets\"", str(error)), str(error)
    assert "the server doesn't have a resource type" in error.stderr
    assert vcluster.kubectl("get", "widgets", check=False) == ""
    with pytest.raises(UnknownKindError, match="serves no kind Widget in example.com/v1"):
        vcluster.apply(CRD_AND_WIDGET.split("---\n")[1])


# ------------------------------------------------------------------------------------------------- helm

CHART_YAML = "apiVersion: v2\nname: small\nversion: 0.1.0\n"
DEPLOYMENT_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: httpd
          image: {{ .Values.image }}
          imagePullPolicy: Never
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
"""
SERVICE_TEMPLATE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80, targetPort: http}]
"""


def small_chart(folder: Path) -> Path:
    chart = folder / "small"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML)
    (chart / "values.yaml").write_text(f"replicas: 1\nimage: {HTTP}\n")
    (chart / "templates" / "deployment.yaml").write_text(DEPLOYMENT_TEMPLATE)
    (chart / "templates" / "service.yaml").write_text(SERVICE_TEMPLATE)
    return chart


RELEASES = 12


def test_helm_install_with_wait_twelve_times(vcluster: Any, tmp_path: Path) -> None:
    chart = small_chart(tmp_path)
    core = client.CoreV1Api(vcluster.api_client)
    apps = client.AppsV1Api(vcluster.api_client)
    seconds = []
    for i in range(RELEASES):
        started = time.monotonic()
        release = vcluster.helm_install(f"r{i}", chart, values={"replicas": 1}, timeout=300)
        seconds.append(time.monotonic() - started)
        assert release["name"] == f"r{i}"
        assert release["info"]["status"] == "deployed"
        # --wait returned: the Deployment's pod is ready and the Service has its cluster IP
        assert apps.read_namespaced_deployment(f"r{i}", "default").status.ready_replicas == 1, i
        assert core.read_namespaced_service(f"r{i}", "default").spec.cluster_ip, i
    print(f"helm_install --wait x{RELEASES}: " + ", ".join(f"{s:.1f}" for s in seconds) + " s")
    listed = vcluster.helm("list", "--namespace", "default", "--short")
    assert sorted(listed.split()) == sorted(f"r{i}" for i in range(RELEASES))

    # an upgrade of a release with a value changed, and helm's own error for a bad chart
    upgraded = vcluster.helm_install("r0", chart, values={"replicas": 2}, timeout=300)
    assert upgraded["version"] == 2
    assert apps.read_namespaced_deployment("r0", "default").status.ready_replicas == 2
    with pytest.raises(CommandError, match=r"`\S*helm --kubeconfig \S+ upgrade --install bad \S+/nope .*` failed "
                                           r"\(exit 1\): Error: .*nope"):
        vcluster.helm_install("bad", tmp_path / "nope")


# ------------------------------------------------------------------------------- logs, exec, port_forward


def test_logs_exec_and_port_forward(vcluster: Any) -> None:
    crash = shell_pod("crash", "echo crash-run-$(cat /proc/sys/kernel/random/uuid); sleep 1; exit 1",
                      restartPolicy="Always")
    solo = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "httpd", "image": HTTP, "imagePullPolicy": "Never",
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}}
    vcluster.apply([*web(), solo, crash])
    vcluster.wait_for("deployment/web", "Available", timeout=READY)
    vcluster.wait_for("pod/solo", "Ready", timeout=READY)
    pod = client.CoreV1Api(vcluster.api_client).list_namespaced_pod(
        "default", label_selector="app=web").items[0].metadata.name

    # logs: the container's output; with its name; of the previous run after a restart
    assert "started-web" in vcluster.logs(pod)
    assert "started-web" in vcluster.logs(pod, container="httpd")
    restarted = vcluster.wait_for(
        "pod/crash", lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 1, timeout=READY)
    assert restarted["status"]["containerStatuses"][0]["restartCount"] >= 1
    previous = vcluster.logs("crash", previous=True)
    assert previous.startswith("crash-run-"), previous
    with pytest.raises(ApiException) as info:
        vcluster.logs("no-such-pod")
    assert info.value.status == 404

    # exec: stdout; a list as is; a non-zero exit with its code and stderr; a command that cannot start
    assert vcluster.exec(pod, ["cat", "/www/index.html"]).strip() == GREETING
    assert vcluster.exec(pod, "echo $((6 * 7))", container="httpd") == "42\n"
    with pytest.raises(ExecError) as failed:
        vcluster.exec(pod, "echo partial; echo to-stderr >&2; exit 3")
    assert (failed.value.returncode, failed.value.stdout, failed.value.stderr) == (3, "partial\n", "to-stderr\n")
    assert str(failed.value) == (f"sh -c 'echo partial; echo to-stderr >&2; exit 3' in pod default/{pod} exited 3; "
                                 "stderr: 'to-stderr'")
    with pytest.raises(ExecError, match=r"did not run: .*no-such-binary") as missing:
        vcluster.exec(pod, ["no-such-binary"])
    assert missing.value.returncode is None

    # port_forward: a service port (80 -> targetPort "http" -> 8080 on a pod behind it), a pod, a deployment
    with vcluster.port_forward("svc/web", 80) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        assert GREETING in get(url)
        assert GREETING in get(url + "/index.html"), "a second connection through the same forward"
    with vcluster.port_forward("service/web", "web") as url:
        assert GREETING in get(url)
    with vcluster.port_forward("pod/solo", 8080) as url:
        assert GREETING in get(url)
    with vcluster.port_forward("po/solo", "http") as url:
        assert GREETING in get(url)
    with vcluster.port_forward("deploy/web", 8080) as url:
        assert GREETING in get(url)
    with pytest.raises(VClusterError, match=r"service default/web has no port 81 \(its ports: 80 \(web\)\)"):
        with vcluster.port_forward("svc/web", 81):
            pass


# --------------------------------------------------------------------------------------------- load_image


@pytest.fixture
def built_image() -> Iterator[tuple[str, str]]:
    """``(name, marker)``: an image built on the host's docker only (not yet in its containerd), removed after."""
    host = str(REPO / "hack" / "host")
    marker = f"verbs-{suffix()}"
    name = f"pytest-vcluster.local/verbs-load:{marker}"
    dockerfile = f"FROM {SHELL}\nRUN echo {marker} > /marker\nCMD [\"cat\", \"/marker\"]\n"
    proc = subprocess.run([host, "docker", "build", "-t", name, "-"], input=dockerfile, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    yield name, marker
    subprocess.run([host, "remove-image", name], capture_output=True, timeout=120)
    subprocess.run([host, "docker", "rmi", "-f", name], capture_output=True, timeout=120)


def test_load_image(vcluster: Any, built_image: tuple[str, str]) -> None:
    name, marker = built_image
    vcluster.load_image(name)
    vcluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loaded"},
                    "spec": {"restartPolicy": "Never", "containers": [
                        {"name": "main", "image": name, "imagePullPolicy": "Never"}]}})
    done = vcluster.wait_for("pod/loaded", lambda p: p["status"]["phase"] in ("Succeeded", "Failed"), timeout=READY)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert vcluster.logs("loaded") == f"{marker}\n"

