"""Bad input, collected: each bad option, ini value, environment variable, marker, values file, chart path,
kubeconfig, context, host or missing tool gets ONE clear message naming the bad value and the fix, early.

Run as users meet it (pytester subprocesses); no cluster is needed: hosts are a kubeconfig pointing at
nothing or at :class:`FakeAPIServer` (canned answers), and missing tools are a PATH without them.
The older cases are in ``test_plugin_pytester.py`` (bad --vcluster-host, VCLUSTER_HOST, ini timeout,
--vcluster-set, missing values file and kubeconfig, marker keyword and positional argument, factory
keyword, no host, no kind, unreachable host, untagged syncer image).
"""

from __future__ import annotations

import fnmatch
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_vcluster.core import host as _hostprovider

if TYPE_CHECKING:
    from conftest import FakeAPIServer

pytestmark = pytest.mark.usefixtures("clean_vcluster_env")

REFUSED = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once
LONG_NAME = "a" * 51
KIND_CONFIG = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"


@dataclass
class Case:
    """One bad input: command-line ``args``, ``ini`` lines, ``env``, extra ``files`` and the one expected line."""

    expected: str
    args: tuple[str, ...] = ()
    ini: str = ""
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: Case,
         test: str = "def test_a(vcluster): pass") -> pytest.RunResult:
    for name, content in case.files.items():
        (pytester.path / name).write_text(content)
    if case.ini:
        pytester.makeini(f"[pytest]\n{case.ini}\n")
    for var, value in case.env.items():
        monkeypatch.setenv(var, value)
    pytester.makepyfile(test_m=textwrap.dedent(test))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *case.args)


# ----------------------------------------------------------------------------- options, ini, environment

USAGE = {
    "connect": Case("ERROR: --vcluster-connect='tunnel' is not valid: use one of auto, port-forward, service",
                    args=("--vcluster-connect=tunnel",)),
    "kind-cluster-name": Case("ERROR: --vcluster-kind-cluster='Bad_Name' is not valid: use lowercase letters, "
                              "digits and '-' (at most 50)", args=("--vcluster-kind-cluster=Bad_Name",)),
    "kind-cluster-too-long": Case(f"ERROR: --vcluster-kind-cluster='{LONG_NAME}' is not valid: use lowercase "
                                  "letters, digits and '-' (at most 50)",
                                  args=(f"--vcluster-kind-cluster={LONG_NAME}",)),
    "chart-not-a-chart": Case("ERROR: --vcluster-chart: no Helm chart at */nochart (no Chart.yaml): pass a chart "
                              "directory or .tgz, or leave the option out to use the chart shipped with "
                              "pytest-vcluster", args=("--vcluster-chart=nochart",)),
    "values-not-a-mapping": Case("ERROR: --vcluster-values: */list.yaml must hold a YAML mapping of chart values, "
                                 "not list", args=("--vcluster-values=list.yaml",), files={"list.yaml": "- 1\n"}),
    "values-malformed": Case("ERROR: --vcluster-values: cannot read */bad.yaml as YAML: * at line *, column *: "
                             "fix the file",
                             args=("--vcluster-values=bad.yaml",), files={"bad.yaml": "a: [1\n"}),
    "set-bad-key": Case("ERROR: --vcluster-set 'a..b=1' is not valid: key 'a..b': bad key segment '' "
                        "(keys look like a.b.c or a.list[[]0[]].b)", args=("--vcluster-set", "a..b=1")),
    "set-empty-key": Case("ERROR: --vcluster-set '=x' is not valid: expected KEY=VALUE "
                          "(e.g. --vcluster-set syncer.image.tag=dev)", args=("--vcluster-set", "=x")),
    "kubeconfig-with-kind": Case("ERROR: --vcluster-host-kubeconfig cannot be used with --vcluster-host=kind: use "
                                 "--vcluster-host=kubeconfig or auto",
                                 args=("--vcluster-host=kind", "--vcluster-host-kubeconfig=kc"),
                                 files={"kc": "apiVersion: v1\n"}),
    "kind-image-untagged": Case("ERROR: --vcluster-kind-image='kindest/node' is not valid: give a kind node image "
                                "with its tag, e.g. kindest/node:v1.33.4",
                                args=("--vcluster-kind-image=kindest/node",)),
    "kind-image-with-kubeconfig-host": Case("ERROR: --vcluster-kind-image cannot be used with "
                                            "--vcluster-host=kubeconfig: it is the node image of a kind host",
                                            args=("--vcluster-host=kubeconfig", "--vcluster-kind-image=k/node:v1")),
    "kind-config-missing": Case("ERROR: --vcluster-kind-config: kind cluster config not found: */nodes.yaml: pass a "
                                "kind cluster config (kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4; "
                                "https://kind.sigs.k8s.io/docs/user/configuration/), or leave the option out for "
                                "kind's one-node default", args=("--vcluster-kind-config=nodes.yaml",)),
    "kind-config-not-kind": Case("ERROR: --vcluster-kind-config: */values.yaml is not a kind cluster config (kind "
                                 "None, apiVersion ''): pass a kind cluster config *",
                                 args=("--vcluster-kind-config=values.yaml",), files={"values.yaml": "replicas: 2\n"}),
    "kind-config-with-kubeconfig-host": Case("ERROR: --vcluster-kind-config cannot be used with "
                                             "--vcluster-host=kubeconfig: it is the cluster config of a kind host",
                                             args=("--vcluster-host=kubeconfig", "--vcluster-kind-config=kind.yaml"),
                                             files={"kind.yaml": KIND_CONFIG}),
    "env-kind-config": Case("ERROR: VCLUSTER_KIND_CONFIG: kind cluster config not found: */gone.yaml: pass a kind "
                            "cluster config *", env={"VCLUSTER_KIND_CONFIG": "gone.yaml"}),
    "ini-kind-config": Case("ERROR: ini option vcluster_kind_config: kind cluster config not found: */gone.yaml: "
                            "pass a kind cluster config *", ini="vcluster_kind_config = gone.yaml"),
    "syncer-base-image": Case("ERROR: --vcluster-syncer-base-image='Not An Image' is not valid: give an image "
                              "reference with Python 3.11, e.g. python:3.11-slim-bookworm",
                              args=("--vcluster-syncer-base-image=Not An Image",)),
    "syncer-image-digest": Case("ERROR: --vcluster-syncer-image='reg.example.com/s@sha256:ab' is not valid: give "
                                "REPOSITORY:TAG, e.g. registry.example.com/team/syncer:v1 (build and push one with: "
                                "python -m pytest_vcluster syncer-image --push REPOSITORY)",
                                args=("--vcluster-syncer-image=reg.example.com/s@sha256:ab",)),
    "syncer-image-uppercase": Case("ERROR: --vcluster-syncer-image='Reg.example.com/S:v1' is not valid: give "
                                   "REPOSITORY:TAG with a lowercase repository, e.g. "
                                   "registry.example.com/team/syncer:v1",
                                   args=("--vcluster-syncer-image=Reg.example.com/S:v1",)),
    "stale-after": Case("ERROR: --vcluster-stale-after='forever' is not valid: give a positive number of seconds, "
                        "or a number with s, m or h (e.g. 180, 30m, 2h)", args=("--vcluster-stale-after=forever",)),
    "env-timeout": Case("ERROR: VCLUSTER_TIMEOUT='-5' is not valid: give a positive number of seconds, or a number "
                        "with s, m or h (e.g. 180, 30m, 2h)", env={"VCLUSTER_TIMEOUT": "-5"}),
    "env-kubeconfig": Case("ERROR: VCLUSTER_HOST_KUBECONFIG: kubeconfig file not found: */missing.kubeconfig: pass "
                           "the kubeconfig of the host cluster, or use --vcluster-host=kind",
                           env={"VCLUSTER_HOST_KUBECONFIG": "missing.kubeconfig"}),
    "env-connect": Case("ERROR: VCLUSTER_CONNECT='ssh' is not valid: use one of auto, port-forward, service",
                        env={"VCLUSTER_CONNECT": "ssh"}),
    "env-kind-cluster": Case("ERROR: VCLUSTER_KIND_CLUSTER='My.Cluster' is not valid: use lowercase letters, "
                             "digits and '-' (at most 50)", env={"VCLUSTER_KIND_CLUSTER": "My.Cluster"}),
    "ini-connect": Case("ERROR: ini option vcluster_connect='tunnel' is not valid: use one of auto, port-forward, "
                        "service", ini="vcluster_connect = tunnel"),
    "ini-values-missing": Case("ERROR: ini option vcluster_values: file not found: */nothere.yaml: pass the path of "
                               "an existing YAML values file", ini="vcluster_values = nothere.yaml"),
    "ini-set": Case("ERROR: ini option vcluster_set 'novalue' is not valid: expected KEY=VALUE "
                    "(e.g. ini option vcluster_set syncer.image.tag=dev)", ini="vcluster_set = novalue"),
    "ini-kubeconfig-missing": Case("ERROR: ini option vcluster_host_kubeconfig: kubeconfig file not found: "
                                   "*/gone.kubeconfig: pass the kubeconfig of the host cluster, or use "
                                   "--vcluster-host=kind", ini="vcluster_host_kubeconfig = gone.kubeconfig"),
    "ini-chart": Case("ERROR: ini option vcluster_chart: no Helm chart at */nochart (no Chart.yaml): *",
                      ini="vcluster_chart = nochart"),
    "ini-bool": Case("ERROR: ini option vcluster_keep_on_failure='maybe' is not valid: use true or false",
                     ini="vcluster_keep_on_failure = maybe"),
}


@pytest.mark.parametrize("case", list(USAGE.values()), ids=list(USAGE))
def test_bad_option_is_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    result = _run(pytester, monkeypatch, case)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([case.expected])


# ----------------------------------------------------------------------------- markers and the factory

MARKERS = {  # keywords, and the message after "ERROR: test_m.py::test_a: @pytest.mark.vcluster"
    "values-not-dict": ("values=[1]", ": values= must be a dict of chart values, not list"),
    "timeout-text": ("timeout='soon'", " timeout='soon' is not valid: give a positive number of seconds, or a "
                                       "number with s, m or h (e.g. 180, 30m, 2h)"),
    "timeout-bool": ("timeout=True", ": timeout= must be a number of seconds, not True"),
    "connect": ("connect='x'", " connect='x' is not valid: use one of auto, port-forward, service"),
    "set-number": ("set=3", ": set= must be a dict {'a.b': value} or a list of 'a.b=value' strings, not 3"),
    "set-no-value": ("set=['novalue']", " set 'novalue' is not valid: expected KEY=VALUE *"),
    "set-bad-dict-key": ("set={'a..b': 1}", ": set key 'a..b' is not valid: bad key segment '' "
                                            "(keys look like a.b.c or a.list[0].b)"),
    "chart-missing": ("chart='/does/not/exist'", ": chart='/does/not/exist': no Helm chart at /does/not/exist"),
    "values-file-missing": ("values_files=['/does/not/exist.yaml']",
                            " values_files: file not found: /does/not/exist.yaml: pass the path of an existing "
                            "YAML values file"),
}


@pytest.mark.parametrize(("keywords", "message"), list(MARKERS.values()), ids=list(MARKERS))
def test_bad_marker_is_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, keywords: str,
                                   message: str) -> None:
    test = f"import pytest\n\n@pytest.mark.vcluster({keywords})\ndef test_a(vcluster):\n    pass\n"
    result = _run(pytester, monkeypatch, Case(""), test)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: test_m.py::test_a: @pytest.mark.vcluster{message}"])


@pytest.mark.parametrize(("keywords", "message"), [
    ("values='a=1'", "vcluster_factory(): values= must be a dict of chart values, not str"),
    ("timeout=0", "vcluster_factory() timeout='0' is not valid: give a positive number of seconds, *"),
], ids=["values-text", "timeout-zero"])
def test_bad_factory_call_fails_the_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                         keywords: str, message: str) -> None:
    result = _run(pytester, monkeypatch, Case(""), f"def test_a(vcluster_factory):\n    vcluster_factory({keywords})\n")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*Traceback*")


# ----------------------------------------------------------------------------- kubeconfig content and contexts

HOSTS = {
    "kubeconfig-malformed": ("key: [unclosed\n", (),
                             "cannot use host kubeconfig */kc: it is not valid YAML (expected ',' or ']', but got "
                             "'<stream end>' at line 2, column 1): pass the kubeconfig of the host cluster "
                             "(kubectl config view --raw --minify writes one)"),
    "kubeconfig-empty": ("", (), "cannot use host kubeconfig */kc: it is empty: pass the kubeconfig of the host "
                                 "cluster (kubectl config view --raw --minify writes one)"),
    "kubeconfig-a-list": ("- a\n", (), "cannot use host kubeconfig */kc: it is not a kubeconfig (a YAML mapping "
                                       "with clusters, users and contexts) but a YAML list: pass the kubeconfig *"),
    "context-missing": (None, ("--vcluster-host-context=prod",),  # None: a good kubeconfig, context h
                        "cannot use host kubeconfig */kc: kubeconfig has no context 'prod' (its contexts: h): pass "
                        "--vcluster-host-context=NAME with one of them, or leave it out to use the current context"),
    "current-context-dangling": ("current-context: gone\ncontexts: [{name: h, context: {cluster: h}}]\n"
                                 "clusters: [{name: h, cluster: {server: 'https://h'}}]\n", (),
                                 "cannot use host kubeconfig */kc: kubeconfig has no context 'gone' (its contexts: "
                                 "h): pass --vcluster-host-context=NAME with one of them, or fix its current-context"),
    "cluster-missing": ("current-context: h\ncontexts: [{name: h, context: {cluster: x}}]\nclusters: []\n", (),
                        "cannot use host kubeconfig */kc: kubeconfig has no cluster 'x': pass the kubeconfig *"),
    "server-missing": ("current-context: h\ncontexts: [{name: h, context: {cluster: h}}]\n"
                       "clusters: [{name: h, cluster: {}}]\n", (),
                       "cannot use host kubeconfig */kc: its cluster has no server address: pass the kubeconfig of "
                       "the host cluster (kubectl config view --raw --minify writes one)"),
}


@pytest.mark.parametrize(("content", "args", "message"), list(HOSTS.values()), ids=list(HOSTS))
def test_bad_kubeconfig_fails_setup(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                    fake_apiserver: FakeAPIServer, content: str | None, args: tuple[str, ...],
                                    message: str) -> None:
    kc = pytester.path / "kc"
    if content is None:
        fake_apiserver.write_kubeconfig(kc, REFUSED)
    else:
        kc.write_text(content)
    result = _run(pytester, monkeypatch, Case("", args=(f"--vcluster-host-kubeconfig={kc}", *args)))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_kubeconfig_host_without_kubeconfig(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, Case("", args=("--vcluster-host=kubeconfig",)))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["--vcluster-host=kubeconfig needs a kubeconfig: pass --vcluster-host-kubeconfig=PATH "
                                 "or set VCLUSTER_HOST_KUBECONFIG."])


def test_kubeconfig_env_naming_no_file(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$KUBECONFIG`` is never the host implicitly: the message says how to use it (test_plugin_host_choice.py)."""
    monkeypatch.setenv("PATH", str(pytester.mkdir("nobin")))
    result = _run(pytester, monkeypatch, Case("", env={"KUBECONFIG": "/nowhere/config"}))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig (or VCLUSTER_HOST_KUBECONFIG, ini "
        "vcluster_host_kubeconfig) when given, else a kind cluster, but no kubeconfig was given and kind cannot run "
        "here: `kind` is not on PATH (install it: https://kind.sigs.k8s.io/docs/user/quick-start/#installation); "
        "`docker` is not on PATH (kind's nodes are Docker containers; install Docker: "
        "https://docs.docker.com/engine/install/). Install what is missing, or pass --vcluster-host-kubeconfig=PATH "
        "to use an existing cluster. $KUBECONFIG (/nowhere/config) is not used implicitly: pass "
        '--vcluster-host-kubeconfig="$KUBECONFIG" to use it.'])


# ----------------------------------------------------------------------------- hosts that answer wrongly, missing tools


def _tools(pytester: pytest.Pytester, *names: str) -> str:
    """A PATH holding only stand-ins of ``names`` (they exit 0): the other tools are missing."""
    folder = pytester.mkdir("bin")
    for name in names:
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    return str(folder)


@pytest.mark.parametrize(("status", "body", "message"), [
    (200, "v1.20.0",
     "the host cluster at http://127.0.0.1:* (kubeconfig */kc) runs Kubernetes v1.20.0, but pytest-vcluster "
     "needs 1.27 or newer (the chart's kubeVersion): use a newer host cluster"),
    (404, {"kind": "Status", "code": 404},
     "the server at http://127.0.0.1:* (kubeconfig */kc) is not a Kubernetes API server: GET /version answered "
     "HTTP 404 Not Found. Point --vcluster-host-kubeconfig at the host cluster's kubeconfig."),
    (200, {"hello": "world"},
     "the server at http://127.0.0.1:* (kubeconfig */kc) is not a Kubernetes API server: GET /version answered "
     "b'{\"hello\": \"world\"}'. Point --vcluster-host-kubeconfig at the host cluster's kubeconfig."),
    (401, {"kind": "Status", "code": 401},
     "the host cluster's API server at http://127.0.0.1:* (kubeconfig */kc) refused its credentials "
     "(HTTP 401 Unauthorized): pass a kubeconfig whose user may use the host cluster"),
    (503, {"kind": "Status", "code": 503},
     "the host cluster's API server at http://127.0.0.1:* (kubeconfig */kc) is not healthy: GET /version answered "
     "HTTP 503 Service Unavailable. Check the host cluster, or point --vcluster-host-kubeconfig at a healthy one."),
], ids=["too-old", "not-kubernetes", "not-a-version", "credentials-refused", "unhealthy"])
def test_wrong_host_fails_setup(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                fake_apiserver: FakeAPIServer, status: int, body: Any, message: str) -> None:
    """A git version as ``body`` stands for the whole ``/version`` answer of that version."""
    fake_apiserver.routes["/version"] = (status, fake_apiserver.version_info(body) if isinstance(body, str) else body)
    kc = fake_apiserver.kubeconfig(pytester.path / "kc")
    result = _run(pytester, monkeypatch, Case("", args=(f"--vcluster-host-kubeconfig={kc}",)))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    assert fake_apiserver.requests == ["GET /version"]  # nothing else is tried


def test_minimum_version_is_the_charts() -> None:
    chart = (Path(_hostprovider.__file__).resolve().parents[2] / "chart" / "Chart.yaml").read_text()
    minimum = ".".join(map(str, _hostprovider.MIN_KUBERNETES))
    assert f'kubeVersion: ">={minimum}.0-0"' in chart


TOOLS = {
    "helm-missing": ((), ("--vcluster-syncer-image=reg.example.com/s:v1",), "def test_a(vcluster): pass",
                     ["pytest-vcluster needs the Helm CLI, but 'helm' is not on PATH: install Helm 3 "
                      "(https://helm.sh/docs/intro/install/) and make sure `helm` is on PATH"]),
    "docker-missing": (("helm",), ("--vcluster-image-loader=true",), "def test_a(vcluster): pass",
                       ["building the syncer image needs the `docker` command, which is not on PATH: install docker, "
                        "or pass --vcluster-syncer-image=REF of an image the host can pull"]),
    "no-image-loader": (("helm",), ("--vcluster-syncer-image=reg.example.com/s:v1",),
                        "def test_a(vcluster_host): vcluster_host.load_image('img:1')",
                        ["E *pytest_vcluster.core.errors.HostError: cannot load image 'img:1': a host given by "
                         "kubeconfig has no way to load images. Pass --vcluster-image-loader='COMMAND' (run as "
                         "COMMAND IMAGE, with KUBECONFIG set to the host's), or use --vcluster-host=kind"]),
    "image-loader-not-found": (("helm",), ("--vcluster-syncer-image=reg.example.com/s:v1",
                                           "--vcluster-image-loader=/no/such/loader --fast"),
                               "def test_a(vcluster_host): vcluster_host.load_image('img:1')",
                               ["E *pytest_vcluster.core.errors.HostError: loading image 'img:1': cannot run "
                                "`/no/such/loader --fast img:1`: [[]Errno 2[]] No such file or directory: "
                                "'/no/such/loader'"]),
}


@pytest.mark.parametrize(("tools", "args", "test", "lines"), list(TOOLS.values()), ids=list(TOOLS))
def test_missing_tool_on_reachable_host(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                        fake_apiserver: FakeAPIServer, tools: tuple[str, ...],
                                        args: tuple[str, ...], test: str, lines: list[str]) -> None:
    kc = fake_apiserver.kubeconfig(pytester.path / "kc")
    monkeypatch.setenv("PATH", _tools(pytester, *tools))
    result = _run(pytester, monkeypatch, Case("", args=(f"--vcluster-host-kubeconfig={kc}", *args)), test)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(lines)


# ----------------------------------------------------------------------------- persistence without a StorageClass


def _storage_class(name: str, default: bool = False) -> dict[str, object]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "provisioner": "p"}


@pytest.mark.parametrize(("classes", "persistence", "message"), [
    ([_storage_class("slow")], {"enabled": True},
     "controlPlane.etcd.persistence.enabled=true needs a StorageClass, but the host cluster at http://127.0.0.1:* "
     "has no default one (it has: slow): set controlPlane.etcd.persistence.storageClass=NAME, mark a class default "
     "(annotation storageclass.kubernetes.io/is-default-class=true), or turn persistence off"),
    ([_storage_class("standard", default=True)], {"enabled": True, "storageClass": "fast"},
     "controlPlane.etcd.persistence.storageClass='fast': the host cluster at http://127.0.0.1:* has no such "
     "StorageClass (it has: standard): name one of them, or leave it empty for the host's default class"),
    ([_storage_class("standard", default=True)], {"enabled": True}, None),
    ([], {"enabled": False}, None),
], ids=["no-default-class", "named-class-missing", "default-class", "persistence-off"])
def test_persistence_needs_a_storage_class(tmp_path: Path, fake_apiserver: FakeAPIServer, classes: list[object],
                                           persistence: dict[str, object], message: str | None) -> None:
    """``Host.check_persistence`` (its call before the helm install is proposed for vcluster.py)."""
    fake_apiserver.routes["/apis/storage.k8s.io/v1/storageclasses"] = (
        200, {"kind": "StorageClassList", "apiVersion": "storage.k8s.io/v1", "metadata": {}, "items": classes})
    host = _hostprovider.Host(fake_apiserver.kubeconfig(tmp_path / "kc"))
    values = {"controlPlane": {"etcd": {"persistence": persistence}}}
    if message is None:
        host.check_persistence(values)
        return
    with pytest.raises(_hostprovider.HostError) as info:
        host.check_persistence(values)
    assert fnmatch.fnmatchcase(str(info.value), message), str(info.value)


# ----------------------------------------------------------------------------- chart values the plugin reads


@pytest.mark.parametrize(("args", "test"), [
    (("--vcluster-set", "podSecurity=nope"), "def test_a(vcluster): pass"),
    ((), "import pytest\n\n@pytest.mark.vcluster(values={'podSecurity': 'Restricted'})\ndef test_a(vcluster): pass\n"),
], ids=["set", "marker"])
def test_bad_pod_security_level_fails_before_the_host_namespace(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_apiserver: FakeAPIServer,
        args: tuple[str, ...], test: str) -> None:
    """The plugin labels the host namespace with the level (Pod Security Admission), so it checks the level
    before making the namespace, instead of leaving it to the chart's schema after."""
    kc = fake_apiserver.kubeconfig(pytester.path / "kc")
    path = _tools(pytester, "helm")
    Path(path, "helm").write_text("#!/bin/sh\nprintf v3.17.0\n")  # `helm version`; nothing else may run
    monkeypatch.setenv("PATH", path)
    result = _run(pytester, monkeypatch, Case("", args=(f"--vcluster-host-kubeconfig={kc}",
                                                        "--vcluster-syncer-image=reg.example.com/s:v1", *args)), test)
    result.assert_outcomes(errors=1)
    level = "nope" if args else "Restricted"
    result.stdout.fnmatch_lines([f"*chart value podSecurity='{level}' is not valid: use one of privileged, "
                                 "baseline, restricted"])
    result.stdout.no_fnmatch_line("*Traceback*")
    assert "POST /api/v1/namespaces" not in fake_apiserver.requests
