"""hack/_conformance.py's pure parts: the JUnit parsing, the side-by-side table, the exit decision
and the sample's focus regex (JUnit shaped like e2e.test's junit_01.xml: ginkgo's reporter with
OmitFailureMessageAttr and OmitSpecLabels)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_conformance", REPO / "hack" / "_conformance.py")
assert _spec is not None and _spec.loader is not None
conf = importlib.util.module_from_spec(_spec)
sys.modules["_conformance"] = conf
_spec.loader.exec_module(conf)

PODS = "[sig-node] Pods should get a host IP [NodeConformance] [Conformance]"
WATCH = "[sig-api-machinery] Watchers should be able to restart watching from the last resource version observed by the previous watch [Conformance]"  # noqa: E501
DNS = "[sig-network] DNS should provide DNS for services  [Conformance]"
SERIAL = "[sig-apps] Daemon set [Serial] should rollback without unnecessary restarts [Conformance]"


def case(name: str, status: str, body: str = "", seconds: float = 1.5, leaf: str = "It") -> str:
    prefix = f"[{leaf}] " if leaf == "It" else f"[{leaf}]"
    name_attr = (prefix + name).strip() if leaf == "It" else prefix + (" " + name if name else "")
    name_attr = name_attr.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (f'<testcase name="{name_attr}" classname="Kubernetes e2e suite" status="{status}" '
            f'time="{seconds}">{body}</testcase>')


def junit(*cases: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites tests="{len(cases)}" disabled="0" errors="0" failures="0" time="10">'
            '<testsuite name="Kubernetes e2e suite" package="/tmp" tests="1" skipped="0" failures="0" errors="0" '
            'time="10" timestamp="2026-12-02T02:30:00"><properties><property name="SuiteSucceeded" value="true">'
            '</property></properties>' + "".join(cases) + "</testsuite></testsuites>")


FAILURE = ('<failure type="failed">[FAILED] expected pod to be running: timed out after 5m0s\n'
           'In [It] at: k8s.io/kubernetes/test/e2e/common/node/pods.go:210 @ 12/02/26 02:31:00.1\n</failure>'
           '<system-err>STEP: creating pod\n</system-err>')
SKIPPED = '<skipped message="skipped - Only supported for providers [gce]"></skipped>'
FILTERED = '<skipped message="skipped"></skipped>'


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        pytest.param(junit(case(PODS, "passed")), {PODS: ("passed", "")}, id="passed"),
        pytest.param(junit(case(PODS, "skipped", SKIPPED, 0)),
                     {PODS: ("skipped", "Only supported for providers [gce]")}, id="skipped-with-reason"),
        pytest.param(junit(case(PODS, "skipped", FILTERED, 0), case(DNS, "passed")), {DNS: ("passed", "")},
                     id="not-selected-left-out"),
        pytest.param(junit(case(PODS, "failed", FAILURE)),
                     {PODS: ("failed", "expected pod to be running: timed out after 5m0s")}, id="failed"),
        pytest.param(junit(case(PODS, "timedout",
                                FAILURE.replace('type="failed">[FAILED]', 'type="timedout">[TIMEDOUT]'))),
                     {PODS: ("failed", "expected pod to be running: timed out after 5m0s")}, id="timedout-is-failed"),
        pytest.param(junit(case(PODS, "panicked",
                                '<error type="panicked">[PANICKED!] Test Panicked\nIn [It] at: x.go:1\n</error>')),
                     {PODS: ("failed", "Test Panicked")}, id="panicked-is-failed"),
        pytest.param(junit(case(PODS, "interrupted",
                                '<error type="interrupted">[INTERRUPTED] Interrupted by User\n</error>')),
                     {PODS: ("failed", "Interrupted by User")}, id="interrupted-is-failed"),
        pytest.param(junit(case(PODS, "pending", '<skipped message="pending"></skipped>')),
                     {PODS: ("skipped", "pending")}, id="pending-is-skipped"),
        pytest.param(junit(case("", "passed", leaf="SynchronizedBeforeSuite"), case(PODS, "passed"),
                           case("Kubernetes e2e JUnit report", "passed", leaf="ReportAfterSuite")),
                     {PODS: ("passed", "")}, id="suite-nodes-left-out-when-passed"),
        pytest.param(junit(case("", "failed", FAILURE.replace("expected pod to be running", "no ready nodes"),
                                leaf="SynchronizedBeforeSuite"), case(PODS, "skipped", SKIPPED, 0)),
                     {"[SynchronizedBeforeSuite]": ("failed", "no ready nodes: timed out after 5m0s"),
                      PODS: ("skipped", "Only supported for providers [gce]")}, id="failed-suite-setup-reported"),
        pytest.param(junit(case(DNS, "passed"), case(WATCH, "failed", FAILURE)),
                     {DNS: ("passed", ""), WATCH: ("failed", "expected pod to be running: timed out after 5m0s")},
                     id="two-spaces-and-long-names-kept"),
        pytest.param(junit(case(PODS, "failed", '<failure message="from the attribute" type="failed">[FAILED] body\n'
                                                '</failure>')),
                     {PODS: ("failed", "from the attribute")}, id="message-attribute-first"),
        pytest.param("<testsuites><testsuite><testcase name='plain ok'/><testcase name='plain bad'>"
                     "<failure message='boom'/></testcase><testcase name='plain skip'><skipped/></testcase>"
                     "</testsuite></testsuites>",
                     {"plain ok": ("passed", ""), "plain bad": ("failed", "boom"), "plain skip": ("skipped", "")},
                     id="plain-junit-without-status"),
    ],
)
def test_parse_junit(xml: str, expected: dict[str, tuple[str, str]]) -> None:
    got = conf.parse_junit(xml)
    assert {name: (r.status, r.message) for name, r in got.items()} == expected


def test_parse_junit_keeps_time() -> None:
    assert conf.parse_junit(junit(case(PODS, "passed", seconds=12.25)))[PODS].seconds == 12.25


def results(**statuses: str) -> dict[str, object]:
    return {name: conf.SpecResult(name, status, 1.0, "boom" if status == "failed" else "")
            for name, status in statuses.items()}


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        pytest.param({"host": results(a="passed", b="passed"), "vcluster": results(a="passed", b="passed")}, 0,
                     id="both-green"),
        pytest.param({"host": results(a="passed", b="passed"), "vcluster": results(a="passed", b="failed")}, 1,
                     id="regression-in-vcluster"),
        pytest.param({"host": results(a="failed", b="passed"), "vcluster": results(a="failed", b="passed")}, 0,
                     id="fails-on-both-is-the-hosts-limit"),
        pytest.param({"host": results(a="failed"), "vcluster": results(a="passed")}, 0, id="only-host-fails"),
        pytest.param({"host": results(a="skipped"), "vcluster": results(a="failed")}, 1,
                     id="fails-in-vcluster-only-skipped-on-host"),
        pytest.param({"host": results(a="skipped"), "vcluster": results(a="skipped")}, 0, id="skipped-on-both"),
        pytest.param({"host": results(a="passed"), "vcluster": results(a="skipped")}, 1,
                     id="passed-on-host-skipped-in-vcluster"),
        pytest.param({"host": results(a="passed", b="passed"), "vcluster": results(a="passed")}, 1,
                     id="passed-on-host-missing-in-vcluster"),
        pytest.param({"host": results(a="passed"), "vcluster": results(**{"a": "skipped",
                                                                          "[SynchronizedBeforeSuite]": "failed"})},
                     1, id="vcluster-suite-setup-failed"),
        pytest.param({"host": results(), "vcluster": results(a="failed")}, 1, id="not-run-on-host"),
        pytest.param({"vcluster": results(a="passed", b="failed")}, 1, id="vcluster-alone-any-failure"),
        pytest.param({"vcluster": results(a="passed", b="skipped")}, 0, id="vcluster-alone-green"),
        pytest.param({"host": results(a="failed")}, 1, id="host-alone-any-failure"),
        pytest.param({"host": results(a="passed"), "vcluster": None}, 2, id="vcluster-without-report"),
        pytest.param({"host": None, "vcluster": results(a="passed")}, 2, id="host-without-report"),
    ],
)
def test_exit_status(outcome: dict[str, object], status: int) -> None:
    assert conf.exit_status(outcome) == status


def test_table_side_by_side_with_summaries_and_vcluster_only_failures() -> None:
    host = results(a="passed", b="passed", c="failed", d="skipped")
    host["e"] = conf.SpecResult("e", "passed", 1.0)
    vc = results(a="passed", b="failed", c="failed", d="skipped", e="failed", f="skipped")
    vc["e"] = conf.SpecResult("e", "failed", 1.0, "")
    vc["f"] = conf.SpecResult("f", "skipped", 0.0, "Spec skipped because SynchronizedBeforeSuite failed")
    host["f"] = conf.SpecResult("f", "passed", 1.0)
    text = conf.table({"host": host, "vcluster": vc}, {"host": 430.4, "vcluster": 472.0})
    lines = text.splitlines()
    assert lines[0].split() == ["host", "vcluster", "spec"]
    rows = {line.split()[-1]: line.split()[:-1] for line in lines[1:6]}
    assert rows == {"a": ["passed", "passed"], "b": ["passed", "failed"], "c": ["failed", "failed"],
                    "e": ["passed", "failed"], "f": ["passed", "skipped"]}
    assert "(1 specs skipped on every target not shown)" in lines
    assert "host: 4 passed, 1 failed, 1 skipped, 6 total in 430 s" in lines
    assert "vcluster: 1 passed, 3 failed, 2 skipped, 6 total in 472 s" in lines
    only = lines[lines.index("Worse in the virtual cluster than on the host:") + 1:]
    # c fails on both: not listed; b with its first failure line, e without one, f with its skip reason
    assert only == ["- b", "    boom", "- e", "    (no failure text)",
                    "- f (skipped)", "    Spec skipped because SynchronizedBeforeSuite failed"]


def test_table_marks_specs_missing_on_a_target() -> None:
    text = conf.table({"host": results(a="passed"), "vcluster": results(b="failed")})
    rows = [line.split() for line in text.splitlines()[1:3]]
    assert rows == [["passed", "-", "a"], ["-", "failed", "b"]]
    # b not run on the host, a not run in the virtual cluster: both fall short
    assert "- b" in text.splitlines() and "- a (not run)" in text.splitlines()


def test_table_one_target() -> None:
    text = conf.table({"vcluster": results(a="passed")})
    assert text.splitlines()[0].split() == ["vcluster", "spec"]
    assert "Worse in the virtual cluster" not in text


def test_markdown_counts_per_sig_and_lists_both_failing_and_worse_specs() -> None:
    net_a, net_b = "[sig-network] A [Conformance]", "[sig-network] B | C [Conformance]"
    node_a = "[sig-node] A [Conformance]"
    host = {net_a: conf.SpecResult(net_a, "passed"), net_b: conf.SpecResult(net_b, "failed", 1.0, "no route"),
            node_a: conf.SpecResult(node_a, "passed")}
    vc = {net_a: conf.SpecResult(net_a, "passed"), net_b: conf.SpecResult(net_b, "failed", 1.0, "no route"),
          node_a: conf.SpecResult(node_a, "failed", 1.0, "x509: certificate is valid for 127.0.0.1")}
    text = conf.markdown({"host": host, "vcluster": vc}, title="T", walls={"host": 600.0, "vcluster": 720.0})
    lines = text.splitlines()
    assert lines[0] == "# T"
    assert "| SIG | specs | passed: host (10 min) | passed: vcluster (12 min) |" in lines
    assert "| sig-network | 2 | 1 | 1 |" in lines
    assert "| sig-node | 1 | 1 | 0 |" in lines
    assert "| **total** | **3** | **2** | **1** |" in lines
    both = lines.index("## Failing on every target (limits of the single-node host, not of the virtual cluster)")
    assert lines[both + 2] == f"- {net_b}: no route"
    worse = lines.index("## Worse in the virtual cluster than on the host")
    assert lines[worse + 2] == f"- {node_a} (failed): x509: certificate is valid for 127.0.0.1"
    # a | in a spec name would split the Markdown table's cell
    assert "| [sig-network] B \\| C [Conformance] | failed | failed |" in lines


def test_markdown_says_none_when_nothing_differs() -> None:
    text = conf.markdown({"host": results(a="passed"), "vcluster": results(a="passed")}, title="T")
    lines = text.splitlines()
    worse = lines.index("## Worse in the virtual cluster than on the host")
    assert lines[worse + 2] == "none"


def test_from_reports_renders_an_earlier_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for target, status in (("host", "passed"), ("vcluster", "failed")):
        (tmp_path / target).mkdir()
        (tmp_path / target / conf.JUNIT_NAME).write_text(junit(case(PODS, status, FAILURE if status == "failed"
                                                                       else "")))
    md = tmp_path / "out.md"
    assert conf.main(["--from-reports", str(tmp_path), "--markdown", str(md)]) == 1
    assert f"passed    failed    {PODS}" in capsys.readouterr().out
    assert f"- {PODS} (failed): expected pod to be running: timed out after 5m0s" in md.read_text().splitlines()


def test_from_reports_without_reports_names_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert conf.main(["--from-reports", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"conformance: no host/vcluster/junit_01.xml under {tmp_path}: pass the "
                                       "--report-dir of a run\n")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("[sig-node] Pods should get a host IP [NodeConformance] [Conformance]",
         r"\[sig-node\] Pods should get a host IP \[NodeConformance\] \[Conformance\]"),
        ("a.b+c*d?e(f)g|h{1}^$\\", r"a\.b\+c\*d\?e\(f\)g\|h\{1\}\^\$\\"),
        ("no-meta chars: here, 1/2 _x_", "no-meta chars: here, 1/2 _x_"),
    ],
)
def test_go_regex_escape(text: str, escaped: str) -> None:
    assert conf.go_regex_escape(text) == escaped
    # Go's RE2 and Python agree on these escapes: the literal matches itself only.
    assert re.fullmatch(escaped, text)


def test_sample_focus_matches_exactly_the_listed_specs() -> None:
    focus = conf.sample_focus(["# a comment", "", PODS, f"  {DNS}  ", WATCH])
    subject = f"{conf.SUITE} {{}}".format
    for name in (PODS, DNS, WATCH):
        assert re.search(focus, subject(name)), name
    for other in (SERIAL, PODS.replace("host IP", "host IPs"), "[sig-x] " + PODS, PODS + " [Slow]"):
        assert not re.search(focus, subject(other)), other


def test_missing_names_the_listed_specs_a_report_lacks() -> None:
    assert conf.missing(["a", "b", "c"], results(a="passed", c="skipped", d="failed")) == ["b"]
    assert conf.missing([], results(a="passed")) == []


def test_sample_focus_refuses_an_empty_sample() -> None:
    with pytest.raises(ValueError, match="no spec"):
        conf.sample_focus(["# nothing", ""])


def test_spec_name_and_first_line() -> None:
    assert conf.spec_name(f"[It] {PODS}") == PODS
    assert conf.spec_name(PODS) == PODS
    assert conf.first_line("\n\n  [FAILED] Told to stop\nIn [It] at: x") == "Told to stop"
    assert conf.first_line("") == ""
    told = '[FAILED] Told to stop trying after 8.227s.\npod "x" failed with status: \n  <v1.PodStatus>'
    assert conf.first_line(told) == 'Told to stop trying after 8.227s. pod "x" failed with status:'
    assert conf.first_line("[FAILED] Timed out after 300.000s.\nIn [It] at: x.go:1") == "Timed out after 300.000s."


# ------------------------------------------------------------------ the e2e.test build (hack/_host/build.py)

sys.path.insert(0, str(REPO / "hack"))
from _host import build, versions  # noqa: E402

UPSTREAM_GOMOD = """module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
\tgithub.com/onsi/ginkgo/v2 v2.21.0
\tk8s.io/api v0.0.0
\tk8s.io/sample-apiserver v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/sample-apiserver => ./staging/src/k8s.io/sample-apiserver
)
"""


def test_new_build_fields_leave_existing_keys_unchanged() -> None:
    """The host's cached binaries stay valid: the key of a build without the new fields is the old formula."""
    import hashlib
    import json

    for b in build.builds():
        old = hashlib.sha256(json.dumps([b.module, b.version, b.packages, b.ldflags, b.tags]).encode()).hexdigest()[:12]
        assert b.key() == old, b.name


def test_test_package_and_module_versions_change_the_key() -> None:
    kube = build.builds()[0]
    e2e = build.conformance_builds()[0]
    assert e2e.test_package and e2e.key() != kube.key()
    from dataclasses import replace

    assert replace(e2e, module_versions=()).key() != e2e.key()


def test_module_versions_override_the_staging_version() -> None:
    e2e = build.conformance_builds()[0]
    gomod = build.wrapper_gomod(e2e, UPSTREAM_GOMOD)
    assert f"\tk8s.io/api => k8s.io/api {build.versions.KUBERNETES_STAGING}\n" in gomod
    assert f"\tk8s.io/sample-apiserver => k8s.io/sample-apiserver {versions.SAMPLE_APISERVER}\n" in gomod
    assert f"require k8s.io/kubernetes {build.versions.KUBERNETES}\n" in gomod


def test_ginkgo_cli_is_a_command_build() -> None:
    ginkgo = build.conformance_builds()[1]
    assert ginkgo.module == "github.com/onsi/ginkgo/v2" and ginkgo.version == versions.SUITES["1.33"].ginkgo
    assert ginkgo.packages == ("github.com/onsi/ginkgo/v2/ginkgo",) and not ginkgo.test_package


def test_a_missing_values_file_is_named_before_anything_runs(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SystemExit) as exc:
        conf.main(["--values", str(missing), "--report-dir", str(tmp_path / "reports")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"hack/conformance: error: --values: file not found: {missing}: pass the path of an existing YAML "
        "values file")
    assert not (tmp_path / "reports").exists()
