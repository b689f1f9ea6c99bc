"""hack/conformance: Kubernetes' conformance suite against a virtual cluster and, as the baseline, the host.

Builds one version's suite, ``e2e.test`` (``go test -c`` of ``k8s.io/kubernetes/test/e2e`` at that
Kubernetes version) and the ``ginkgo`` CLI its go.mod requires, from the Go module proxy (cached like the
host's binaries, see hack/_host/build.py), has the host serve the images that suite pulls (its
test/utils/image/manifest.go: hack/_host/versions.py ``SUITES``, built and pushed once per version), then
for each target runs the selected specs with ``ginkgo --procs N``:

* ``host``: the host cluster itself (``VCLUSTER_HOST_KUBECONFIG``), the baseline;
* ``vcluster``: a fresh virtual cluster of the suite's minor made with ``pytest_vcluster.VCluster.create``
  (the chart's default values otherwise, unless ``--values``/``--set``; the syncer image of this
  checkout), deleted at the end, also on failure, Ctrl-C or SIGTERM.

The version (:func:`select_suite`): ``--kubernetes MINOR``; else the chart's default minor
(chart/kubernetes-versions.yaml ``default``: the version a user's virtual cluster runs), except with
``--target host`` alone, which runs the host's own version's suite (the host is 1.33). Both targets of a
run run the same suite, so each spec is compared with itself.

Each target's JUnit file (the framework's ``junit_01.xml``) is kept under ``--report-dir``. Printed:
per-step timings, each spec's result on the host and in the virtual cluster, a summary line per
target, and the first failure line of each spec that fails only in the virtual cluster.

Exit status: 1 if the virtual cluster falls short of the host (a spec failing there and not on the
host, or passing on the host and not there; with ``--target vcluster`` or ``host``: any failure), 2 if
a target produced no report or a line of the sample names no spec, else 0.

    .venv/bin/python hack/_conformance.py [--target both] [--kubernetes 1.37] [--sample] [--procs N] [--dry-run] ...
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: the description e2e.test gives ginkgo.RunSpecs: ginkgo matches --focus/--skip against
#: "<description> <spec text>", so an anchored focus starts with it.
SUITE = "Kubernetes e2e suite"
DEFAULT_FOCUS = r"\[Conformance\]"
DEFAULT_SKIP = r"\[Serial\]|\[Disruptive\]"
#: one sample per suite (spec names change between versions): hack/conformance-sample-<minor>.txt
SAMPLE_FILES = REPO / "hack" / "conformance-sample-{minor}.txt"
#: the framework writes its (short) JUnit report there, inside --report-dir
JUNIT_NAME = "junit_01.xml"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
TARGETS = ("host", "vcluster")


# ---------------------------------------------------------------------------------- pure logic


@dataclass(frozen=True)
class SpecResult:
    name: str
    status: str  # passed / failed / skipped
    seconds: float = 0.0
    #: the first line of the failure (failed specs only)
    message: str = ""


def spec_name(testcase_name: str) -> str:
    """The spec text of a JUnit testcase name (ginkgo prefixes the node type: ``[It] ``)."""
    return re.sub(r"^\[(It|BeforeSuite|AfterSuite|SynchronizedBeforeSuite|SynchronizedAfterSuite|"
                  r"ReportAfterSuite|ReportBeforeSuite|DeferCleanup \(Suite\))\] ", "", testcase_name)


#: gomega's generic openings; the reason is on the next line
_GENERIC = re.compile(r"^(Told to stop trying|Timed out) after [\d.]+m?s\.?$")


def first_line(text: str) -> str:
    """The first non-empty line of a failure text, without ginkgo's ``[FAILED]``/``[PANICKED!]`` tag
    (with the next line when the first is gomega's generic "Told to stop trying after 8.2s.")."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    first = re.sub(r"^\[(FAILED|PANICKED!|TIMEDOUT|INTERRUPTED|ABORTED)\]\s*", "", lines[0])
    if _GENERIC.match(first) and len(lines) > 1 and not lines[1].startswith("In ["):
        first += " " + lines[1]
    return first


def parse_junit(xml_text: str) -> dict[str, SpecResult]:
    """Spec text -> result, from a JUnit report of e2e.test (ginkgo's format).

    Only the selected specs (``[It]``) count: the ones --focus/--skip left out (``<skipped
    message="skipped">``) are dropped, the ones that skipped themselves are kept. Suite set-up
    nodes appear only when they fail, as a failed pseudo-spec named after the node (e.g.
    ``[SynchronizedBeforeSuite]``: every spec then failed or never ran). ginkgo's states
    panicked/timedout/interrupted/aborted count as failed, pending as skipped.
    """
    root = ET.fromstring(xml_text)
    out: dict[str, SpecResult] = {}
    for case in root.iter("testcase"):
        raw = case.get("name", "")
        status = (case.get("status") or "").lower()
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if not status:  # plain JUnit: the child elements say it
            status = FAILED if problem is not None else SKIPPED if case.find("skipped") is not None else PASSED
        if status in ("panicked", "timedout", "interrupted", "aborted", "error"):
            status = FAILED
        if status == "pending":
            status = SKIPPED
        is_spec = raw.startswith("[It] ") or not raw.startswith("[")
        if not is_spec and status != FAILED:
            continue
        skipped = case.find("skipped")
        if status == SKIPPED and skipped is not None and skipped.get("message") == "skipped":
            # Not selected by --focus/--skip: ginkgo writes every spec of the suite, and a spec that
            # skips itself at run time (e2eskipper) says why ("skipped - <reason>").
            continue
        name = spec_name(raw) if is_spec else raw
        message = ""
        if status == SKIPPED and skipped is not None:
            message = (skipped.get("message") or "").removeprefix("skipped - ").removeprefix("skipped")
        if status == FAILED and problem is not None:
            message = first_line(problem.get("message") or "") or first_line(problem.text or "")
        out[name] = SpecResult(name, status, float(case.get("time") or 0.0), message)
    return out


@dataclass(frozen=True)
class Summary:
    passed: int
    failed: int
    skipped: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def summarize(results: Mapping[str, SpecResult]) -> Summary:
    statuses = [r.status for r in results.values()]
    return Summary(statuses.count(PASSED), statuses.count(FAILED), statuses.count(SKIPPED))


def regressions(host: Mapping[str, SpecResult], vcluster: Mapping[str, SpecResult]) -> list[SpecResult]:
    """The virtual cluster's results that fall short of the host's, by spec name: a spec that fails
    in the virtual cluster and did not fail on the host (passed, skipped or absent there: e.g. the
    suite's set-up failing in the virtual cluster, a pseudo-spec the host never had), and a spec that
    passed on the host but did not pass in the virtual cluster (skipped there, e.g. every spec after
    a failed set-up, or absent: status ``-``). A spec failing on both is the host's limit."""
    out = []
    for name in sorted(set(host) | set(vcluster)):
        h, v = host.get(name), vcluster.get(name)
        if v is not None and v.status == FAILED and (h is None or h.status != FAILED):
            out.append(v)
        elif h is not None and h.status == PASSED and (v is None or v.status != PASSED):
            out.append(v or SpecResult(name, "-", 0.0, "not in the virtual cluster's report"))
    return out


def missing(listed: Sequence[str], results: Mapping[str, SpecResult]) -> list[str]:
    """The listed specs a report does not name (a sample line that matches no spec, e.g. a typo or a
    spec renamed upstream, would otherwise shrink the sample silently)."""
    return [name for name in listed if name not in results]


def exit_status(results: Mapping[str, Mapping[str, SpecResult] | None]) -> int:
    """The run's exit status from each target's results (None: the target produced no report).

    Both targets: 1 on any of :func:`regressions` (a spec failing in the virtual cluster and not
    on the host, or passing on the host and not in the virtual cluster). One target: 1 on any failure.
    2 when a target that ran produced no report at all.
    """
    if any(r is None for r in results.values()):
        return 2
    got = {k: v for k, v in results.items() if v is not None}
    if set(got) == set(TARGETS):
        return 1 if regressions(got["host"], got["vcluster"]) else 0
    return 1 if any(summarize(r).failed for r in got.values()) else 0


def table(results: Mapping[str, Mapping[str, SpecResult]], walls: Mapping[str, float] | None = None) -> str:
    """Each spec's result per target side by side (specs skipped everywhere left out), a summary
    line per target and, for each of :func:`regressions`, its first failure line or skip reason."""
    targets = [t for t in TARGETS if t in results]
    names = sorted({n for r in results.values() for n in r})
    shown = [n for n in names if any(n in results[t] and results[t][n].status != SKIPPED for t in targets)]
    lines = ["  ".join(f"{t:<8}" for t in targets) + "  spec"]
    for n in shown:
        lines.append("  ".join(f"{(results[t][n].status if n in results[t] else '-'):<8}" for t in targets)
                     + f"  {n}")
    if len(shown) < len(names):
        lines.append(f"({len(names) - len(shown)} specs skipped on every target not shown)")
    lines.append("")
    for t in targets:
        s = summarize(results[t])
        wall = f" in {walls[t]:.0f} s" if walls and t in walls else ""
        lines.append(f"{t}: {s.passed} passed, {s.failed} failed, {s.skipped} skipped, {s.total} total{wall}")
    if "vcluster" in results:
        only = regressions(results.get("host", {}), results["vcluster"])
        if only:
            lines += ["", "Worse in the virtual cluster than on the host:"]
            for r in only:
                tag = "" if r.status == FAILED else f" ({'not run' if r.status == '-' else r.status})"
                lines.append(f"- {r.name}{tag}\n    {r.message or '(no failure text)'}")
    return "\n".join(lines)


def sig_of(name: str) -> str:
    """The SIG of a spec (``[sig-network] DNS ...`` -> ``sig-network``; ``-`` when it names none)."""
    m = re.match(r"^\[(sig-[a-z-]+)\]", name)
    return m.group(1) if m else "-"


def markdown(results: Mapping[str, Mapping[str, SpecResult]], *, title: str,
             walls: Mapping[str, float] | None = None) -> str:
    """A Markdown report: per-SIG counts of passed specs per target, the specs that fail on every
    target (the host's limits), the specs where the virtual cluster falls short (with their first
    failure line), then every spec's result side by side."""
    targets = [t for t in TARGETS if t in results]
    names = sorted({n for r in results.values() for n in r})

    def status(t: str, n: str) -> str:
        return results[t][n].status if n in results[t] else "-"

    out = [f"# {title}", ""]
    wall = {t: f" ({walls[t] / 60:.0f} min)" if walls and t in walls else "" for t in targets}
    out.append("| SIG | specs | " + " | ".join(f"passed: {t}{wall[t]}" for t in targets) + " |")
    out.append("|---|---:|" + "---:|" * len(targets))
    for sig in sorted({sig_of(n) for n in names}) + ["total"]:
        in_sig = [n for n in names if sig == "total" or sig_of(n) == sig]
        cells = [str(sum(status(t, n) == PASSED for n in in_sig)) for t in targets]
        label, count = (f"**{sig}**", f"**{len(in_sig)}**") if sig == "total" else (sig, str(len(in_sig)))
        if sig == "total":
            cells = [f"**{c}**" for c in cells]
        out.append(f"| {label} | {count} | " + " | ".join(cells) + " |")
    for t in targets:
        s = summarize(results[t])
        out.append("")
        out.append(f"- {t}: {s.passed} passed, {s.failed} failed, {s.skipped} skipped of {s.total}")
    both_failed = [n for n in names if targets and all(status(t, n) == FAILED for t in targets)]
    if len(targets) > 1:
        out += ["", "## Failing on every target (limits of the single-node host, not of the virtual cluster)", ""]
        out += [f"- {n}: {results[targets[0]][n].message or '(no failure text)'}" for n in both_failed] or ["none"]
        short = regressions(results.get("host", {}), results.get("vcluster", {})) if "vcluster" in results else []
        out += ["", "## Worse in the virtual cluster than on the host", ""]
        out += [f"- {r.name} ({r.status}): {r.message or '(no failure text)'}" for r in short] or ["none"]
    out += ["", "## Every spec", "", "| spec | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for n in names:
        out.append(f"| {n.replace('|', chr(92) + '|')} | " + " | ".join(status(t, n) for t in targets) + " |")
    return "\n".join(out) + "\n"


def go_regex_escape(text: str) -> str:
    r"""``text`` as a literal in a Go (RE2) regular expression: ``\`` before each metacharacter."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _spec_lines(lines: Sequence[str]) -> list[str]:
    """The spec texts of a sample file's lines (one full spec text per line; ``#`` comments)."""
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def sample_focus(lines: Sequence[str]) -> str:
    """The --focus selecting exactly the specs listed (one full spec text per line; ``#`` comments)."""
    specs = _spec_lines(lines)
    if not specs:
        raise ValueError("the sample lists no spec")
    return f"^{go_regex_escape(SUITE)} (?:" + "|".join(go_regex_escape(s) for s in specs) + ")$"


def sample_file(minor: str) -> Path:
    """The sample of the suite of ``minor`` (the same specs in each, under that version's names)."""
    return Path(str(SAMPLE_FILES).format(minor=minor))


def read_sample(path: Path) -> list[str]:
    return _spec_lines(path.read_text().splitlines())


def select_suite(kubernetes: str | None, target: str) -> Any:
    """The suite a run builds and runs (a hack/_host/versions.py ``Suite``): ``kubernetes`` (a minor or its
    patch) when given; else the host's own version's with ``--target host`` (the baseline of the host as it
    is), else the chart's default minor (the version users' virtual clusters run). A ValueError names a
    version without a recorded suite."""
    from _host import versions

    if kubernetes is not None:
        return versions.suite(kubernetes)
    return versions.SUITES[versions.HOST_MINOR if target == "host" else versions.DEFAULT_MINOR]


# ---------------------------------------------------------------------------------- running


class Steps:
    """Per-step wall times, printed as they end and once more at the end."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"==> {name} ...", flush=True)
        t = time.monotonic()
        try:
            yield
        finally:
            dt = time.monotonic() - t
            self.times.append((name, dt))
            print(f"==> {name}: {dt:.1f} s", flush=True)

    def report(self) -> str:
        return "\n".join(f"  {dt:8.1f} s  {name}" for name, dt in self.times)


def _terminate(proc: subprocess.Popen[Any]) -> None:
    """Stops ginkgo and its test processes: SIGINT (ginkgo cleans up its nodes), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def e2e_args(kubeconfig: Path, report_dir: Path, kubectl: str) -> list[str]:
    """e2e.test's own flags (after ``--`` on the ginkgo command line)."""
    return [
        f"--kubeconfig={kubeconfig}",
        # No cloud: the fallback provider; nothing SSHes to nodes.
        "--provider=skeleton",
        f"--kubectl-path={kubectl}",
        f"--report-dir={report_dir}",
        f"--e2e-output-dir={report_dir}",
        # A single-node host; a virtual cluster whose (fake) nodes the syncer creates.
        "--system-pods-startup-timeout=5m",
        "--node-schedulable-timeout=5m",
        "--allowed-not-ready-nodes=0",
        "--minStartupPods=0",
    ]


def run_suite(tools: Mapping[str, Path], kubeconfig: Path, report_dir: Path, kubectl: str, *, focus: str,
              skip: str, procs: int, timeout: str, log: Path) -> dict[str, SpecResult] | None:
    """Runs the selected specs with ginkgo; returns the parsed JUnit report (None when absent)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    junit = report_dir / JUNIT_NAME
    junit.unlink(missing_ok=True)
    cmd = [str(tools["ginkgo"]), f"--procs={procs}", "--no-color", f"--timeout={timeout}",
           "--flake-attempts=1",  # one attempt per spec: no retries hide a flaky failure
           "--poll-progress-after=5m", f"--focus={focus}"]
    if skip:
        cmd.append(f"--skip={skip}")
    cmd += [str(tools["e2e.test"]), "--", *e2e_args(kubeconfig, report_dir, kubectl)]
    print(f"    ginkgo --procs={procs} ... e2e.test, output in {log}", flush=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=report_dir)
        try:
            rc = proc.wait()
        finally:
            _terminate(proc)
    print(f"    ginkgo exited with {rc}", flush=True)
    if not junit.exists():
        print(f"    no {junit}: see the end of {log}:", flush=True)
        print("\n".join("      " + line for line in log.read_text(errors="replace").splitlines()[-25:]))
        return None
    return parse_junit(junit.read_text())


def dry_run(tools: Mapping[str, Path], kubeconfig: Path, report_dir: Path, kubectl: str, *, focus: str,
            skip: str) -> list[str]:
    """The specs the focus and skip select (e2e.test --ginkgo.dry-run: nothing runs)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    junit = report_dir / JUNIT_NAME
    junit.unlink(missing_ok=True)
    cmd = [str(tools["e2e.test"]), "--ginkgo.dry-run", "--ginkgo.no-color", f"--ginkgo.focus={focus}"]
    if skip:
        cmd.append(f"--ginkgo.skip={skip}")
    cmd += e2e_args(kubeconfig, report_dir, kubectl)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=report_dir)
    if not junit.exists():
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"conformance: e2e.test --ginkgo.dry-run wrote no {junit} (exit {proc.returncode})")
    return sorted(n for n, r in parse_junit(junit.read_text()).items() if r.status == PASSED)


def _host_kubeconfig() -> Path:
    path = os.environ.get("VCLUSTER_HOST_KUBECONFIG") or subprocess.run(
        [str(REPO / "hack" / "host"), "kubeconfig"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(path)


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise SystemExit("conformance: no kubectl on PATH (hack/conformance puts `hack/host tools` there)")
    return found


def _values(files: Sequence[str]) -> dict[str, Any]:
    """The --values files merged in order (the plugin's reader: a missing or malformed file is named)."""
    from pytest_vcluster.core.values import deep_merge, load_values_file

    return deep_merge(*(load_values_file(Path(f), source="--values") for f in files))


def ready_nodes(vc: Any) -> list[str]:
    """The virtual cluster's ready Nodes, asked once. A fresh cluster shows the host node of its CoreDNS (pod
    R-0's), Ready, by the time it is ready: the suite's set-up needs a ready schedulable node."""
    from kubernetes import client

    names = []
    for node in client.CoreV1Api(vc.api_client).list_node().items:
        conditions = (node.status.conditions if node.status else None) or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            names.append(node.metadata.name)
    return sorted(names)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/conformance",
        description="Kubernetes' conformance suite of one version (e2e.test built from k8s.io/kubernetes) against a "
                    "fresh virtual cluster of that version and, as the baseline, the host; prints a side-by-side "
                    "table.",
        epilog="Exit status: 1 if a spec fails in the virtual cluster and not on the host, or passes on the host "
               "and not in the virtual cluster (with one target: any failure); 2 if a target produced no report "
               "or a line of the sample names no spec; 0 otherwise.",
    )
    parser.add_argument("--target", choices=("vcluster", "host", "both"), default="both",
                        help="where to run the specs (default both: the host first, as the baseline)")
    parser.add_argument("--focus", default=DEFAULT_FOCUS,
                        help=f"ginkgo focus regex, Go syntax (default {DEFAULT_FOCUS!r})")
    parser.add_argument("--skip", default=None,
                        help=f"ginkgo skip regex (default {DEFAULT_SKIP!r}, empty with --serial)")
    parser.add_argument("--serial", action="store_true",
                        help="also run [Serial] and [Disruptive] specs (ginkgo runs Serial ones alone, at the end)")
    parser.add_argument("--kubernetes", default=None, metavar="MINOR",
                        help="the suite's version (e2e.test of that k8s.io/kubernetes, a virtual cluster of that "
                             "minor; a minor of chart/kubernetes-versions.yaml with a suite in hack/_host/versions.py "
                             "SUITES: 1.33, 1.37); default: the chart's default minor, the host's own with "
                             "--target host")
    parser.add_argument("--sample", action="store_true",
                        help=f"focus on the specs listed in {SAMPLE_FILES.relative_to(REPO)} of the suite "
                             "(overrides --focus)")
    parser.add_argument("--procs", type=int, default=4,
                        help="ginkgo parallel processes (default 4)")
    parser.add_argument("--values", action="append", default=[], metavar="FILE",
                        help="chart values file for the virtual cluster (repeatable; default: the chart's defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="chart value for the virtual cluster, as helm --set (repeatable)")
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="where each target's JUnit file and ginkgo log go (DIR/<target>/); "
                             "default: /tmp/pytest-vcluster-conformance/<UTC timestamp>")
    parser.add_argument("--timeout", default="3h", help="ginkgo --timeout per target, a Go duration (default 3h)")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                        help="also write the results as Markdown to FILE (per-SIG counts, differences, every spec)")
    parser.add_argument("--from-reports", type=Path, default=None, metavar="DIR",
                        help="run nothing: read DIR/<target>/junit_01.xml of an earlier run and print (and with "
                             "--markdown write) its table; same exit status")
    parser.add_argument("--dry-run", action="store_true",
                        help="only list the specs the focus/skip select (e2e.test --ginkgo.dry-run), nothing runs")
    args = parser.parse_args(argv)
    if args.procs < 1:
        parser.error("--procs must be at least 1")
    from pytest_vcluster.core.errors import ConfigError

    try:  # a bad values file is named now, not after the host's suite has run
        args.values_merged = _values(args.values)
    except ConfigError as e:
        parser.error(str(e))

    if args.from_reports is not None:
        return from_reports(args.from_reports, args.markdown)

    sys.path.insert(0, str(REPO / "hack"))
    from _host import build, cluster
    from _host._util import HostError
    from _host.layout import Layout

    try:
        suite = select_suite(args.kubernetes, args.target)
    except ValueError as e:
        parser.error(f"--kubernetes: {e}")
    sample = sample_file(suite.minor)
    if args.sample and not sample.exists():
        parser.error(f"--sample: no {sample.relative_to(REPO)} (the sample under Kubernetes {suite.minor}'s names)")
    focus = sample_focus(sample.read_text().splitlines()) if args.sample else args.focus
    skip = args.skip if args.skip is not None else ("" if args.serial else DEFAULT_SKIP)
    if args.serial and args.skip is not None:
        skip = "|".join(p for p in args.skip.split("|") if p not in (r"\[Serial\]", r"\[Disruptive\]"))
    report_dir = (args.report_dir or Path("/tmp/pytest-vcluster-conformance")
                  / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)

    steps = Steps()
    started = time.monotonic()
    with steps.step(f"e2e.test and ginkgo ({suite.kubernetes}, ginkgo {suite.ginkgo})"):
        tools = build.build_conformance(suite)
    # The suite's own kubectl (built with it unless the host's is that version: see build.conformance_builds).
    kubectl = str(tools["kubectl"]) if "kubectl" in tools else _kubectl()
    host_kubeconfig = _host_kubeconfig()
    print(f"reports in {report_dir}", flush=True)

    if args.dry_run:
        with steps.step("dry run"):
            specs = dry_run(tools, host_kubeconfig, report_dir / "dry-run", kubectl, focus=focus, skip=skip)
        print("\n".join(specs))
        print(f"{len(specs)} specs selected (focus {focus[:120]!r}{'...' if len(focus) > 120 else ''}, "
              f"skip {skip!r})")
        return 0

    with steps.step(f"images of the {suite.minor} suite and its virtual control plane (cached per version)"):
        try:
            pushed = cluster.serve_suite(Layout.default(), suite)
        except HostError as e:
            raise SystemExit(f"conformance: the {suite.minor} suite's images: {e}") from None
        print(f"    {len(suite.images)} names beyond the host's own set, {len(pushed)} pushed now", flush=True)

    targets = list(TARGETS) if args.target == "both" else [args.target]
    results: dict[str, dict[str, SpecResult] | None] = {}
    walls: dict[str, float] = {}
    common = dict(focus=focus, skip=skip, procs=args.procs, timeout=args.timeout)
    try:
        if "host" in targets:
            with steps.step("suite on the host"):
                t0 = time.monotonic()
                results["host"] = run_suite(tools, host_kubeconfig, report_dir / "host", kubectl,
                                            log=report_dir / "host.log", **common)
                walls["host"] = time.monotonic() - t0
        if "vcluster" in targets:
            results["vcluster"] = run_in_vcluster(args, suite.minor, tools, host_kubeconfig, report_dir, kubectl,
                                                  steps, walls, common)
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr, flush=True)
        print("steps:\n" + steps.report())
        return 130
    print("\nsteps:\n" + steps.report() + f"\n  {time.monotonic() - started:8.1f} s  total\n", flush=True)
    got = {k: v for k, v in results.items() if v is not None}
    if got:
        print(table(got, walls))
        if args.markdown:
            args.markdown.write_text(markdown(got, walls=walls, title=_title(focus, skip)))
            print(f"\nMarkdown report: {args.markdown}")
    for t, r in results.items():
        if r is None:
            print(f"{t}: no JUnit report (see {report_dir / (t + '.log')})")
    print(f"\nJUnit reports: {', '.join(str(report_dir / t / JUNIT_NAME) for t in results)}")
    status = exit_status(results)
    if args.sample:
        for t, r in got.items():
            lost = missing(read_sample(sample), r)
            if lost:
                print(f"{t}: {len(lost)} specs of the sample not in the report (renamed? typo?):")
                print("\n".join(f"  {name}" for name in lost))
                status = max(status, 2)
    return status


def _title(focus: str, skip: str) -> str:
    return (f"Conformance of {time.strftime('%Y-%m-%d', time.gmtime())}: focus {focus[:80]!r}"
            f"{'...' if len(focus) > 80 else ''}, skip {skip!r}")


def from_reports(report_dir: Path, markdown_file: Path | None) -> int:
    """The table (and Markdown) of an earlier run's JUnit files; its exit status."""
    results: dict[str, dict[str, SpecResult] | None] = {}
    for t in TARGETS:
        junit = report_dir / t / JUNIT_NAME
        if junit.exists():
            results[t] = parse_junit(junit.read_text())
    if not results:
        print(f"conformance: no {'/'.join(TARGETS)}/{JUNIT_NAME} under {report_dir}: pass the --report-dir of a "
              "run", file=sys.stderr)
        return 2
    got = {k: v for k, v in results.items() if v is not None}
    print(table(got))
    if markdown_file:
        stamp = time.strftime("%Y-%m-%d", time.gmtime(max((report_dir / t / JUNIT_NAME).stat().st_mtime
                                                            for t in got)))
        markdown_file.write_text(markdown(got, title=f"Conformance run of {stamp} ({report_dir.name})"))
        print(f"\nMarkdown report: {markdown_file}")
    return exit_status(results)


def run_in_vcluster(args: argparse.Namespace, minor: str, tools: Mapping[str, Path], host_kubeconfig: Path,
                    report_dir: Path, kubectl: str, steps: Steps, walls: dict[str, float],
                    common: Mapping[str, Any]) -> dict[str, SpecResult] | None:
    from pytest_vcluster import Host, VCluster
    from pytest_vcluster.core import labels, naming
    from pytest_vcluster.core.settings import DEFAULT_SYNCER_BASE_IMAGE

    host = Host.from_kubeconfig(str(host_kubeconfig))
    host.image_loader = os.environ.get("VCLUSTER_IMAGE_LOADER")
    run_id = naming.new_run_id()
    vc = None
    try:
        with steps.step("virtual cluster (with the syncer image of this checkout, put on the host first)"):
            # The plugin's labels (run, pid, host, created): the reaper removes it if this process dies.
            # At the suite's own minor: a suite must match its API server; e2e.test v1.33 against v1.37 fails a
            # spec on skew alone (docs/kubernetes-versions.md). --values/--set image tags still win.
            vc = VCluster.create(host, values=args.values_merged, set=args.set or None, timeout=300,
                                 kubernetes=minor,
                                 name=naming.make_name(run_id, "conformance", 1),
                                 labels=labels.namespace_labels(run_id, "conformance"), syncer_image="auto",
                                 syncer_base_image=os.environ.get("VCLUSTER_SYNCER_BASE_IMAGE",
                                                                  DEFAULT_SYNCER_BASE_IMAGE),
                                 progress=lambda line: print(f"    {line}", flush=True))
            print(f"    {vc.name} in host namespace {vc.host_namespace}, Kubernetes {minor}", flush=True)
        with steps.step("a ready node in the virtual cluster (its CoreDNS's)"):
            nodes = ready_nodes(vc)
            if not nodes:
                raise SystemExit("conformance: the fresh virtual cluster lists no ready Node (the suite's set-up "
                                 "needs one)")
            print(f"    node {', '.join(nodes)}", flush=True)
        with steps.step("suite in the virtual cluster"):
            t0 = time.monotonic()
            result = run_suite(tools, vc.kubeconfig_path, report_dir / "vcluster", kubectl,
                               log=report_dir / "vcluster.log", **common)
            walls["vcluster"] = time.monotonic() - t0
        return result
    finally:
        if vc is not None:
            with steps.step("delete the virtual cluster"):
                # Ctrl-C here must not leave it behind.
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    vc.delete(wait=True, timeout=300)
                finally:
                    signal.signal(signal.SIGINT, previous)
        host.close()


if __name__ == "__main__":
    sys.exit(main())
