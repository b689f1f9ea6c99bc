"""What pytest-vcluster shows: the header line, the terminal summary and failure diagnostics."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core import kubeconfig as _kubeconfig
from ..core.host import kind_missing
from ..core.settings import Settings, chart_version, shipped_chart
from .manager import Summary


def kubeconfig_host(path: Path, context: str | None) -> str:
    """``kubeconfig PATH (context NAME, server URL)``, read from the file (no cluster contacted): the context
    named by ``--vcluster-host-context``, else the file's current-context; ``?`` for what cannot be read."""
    server = "?"
    try:
        raw = _kubeconfig.load(path.read_text())
        context = context or str(raw.get("current-context") or "") or None
        server = _kubeconfig.server_of(raw, context) or "?"
    except (OSError, ValueError):
        pass
    return f"kubeconfig {path} (context {context or '?'}, server {server})"


def kind_part(settings: Settings) -> str:
    """``kind cluster NAME``, and the kind config it is created from when one is given."""
    config = f" (config {settings.kind_config})" if settings.kind_config is not None else ""
    return f"kind cluster {settings.kind_cluster}{config}"


def host_part(settings: Settings, env: Mapping[str, str]) -> str:
    """The host this run uses, as far as it is known without contacting a cluster."""
    if settings.host == "kind":
        return kind_part(settings)
    if settings.host_kubeconfig is not None:
        return kubeconfig_host(settings.host_kubeconfig, settings.host_context)
    if settings.host == "kubeconfig":
        return "no host kubeconfig given (pass --vcluster-host-kubeconfig=PATH)"
    missing = kind_missing(env)
    if missing:
        return f"no host: no host kubeconfig given, and kind cannot run ({', '.join(missing)} not on PATH)"
    return kind_part(settings)


def header_line(settings: Settings, env: Mapping[str, str]) -> str:
    """One line, without contacting any cluster: host mode and the host (kind cluster, or kubeconfig with its
    context and server), chart and its version."""
    parts = [f"vcluster: host={settings.host}", host_part(settings, env)]
    chart = settings.chart
    if chart is None:
        chart = shipped_chart()
    if chart is None:
        parts.append("chart: not found")
    else:
        parts.append(f"chart {chart} version {chart_version(chart) or '?'}")
    parts.append(f"timeout {settings.timeout:.0f}s")
    return ", ".join(parts)


def write_summary(terminalreporter: Any, summary: Summary, settings: Settings) -> None:
    """The ``vcluster`` section of the terminal summary (only when clusters were used or something leaked)."""
    if not (summary.records or summary.leaks or summary.errors or summary.host):
        return
    tr = terminalreporter
    tr.section("vcluster", sep="-")
    if summary.host:
        tr.write_line(f"host: {summary.host}")
    if summary.stale_removed:
        tr.write_line(f"removed host namespaces of dead runs: {', '.join(sorted(set(summary.stale_removed)))}")
    if summary.records:
        tr.write_line("setup and teardown per cluster:")
        width = max(len(r.name) for r in summary.records)
        for r in sorted(summary.records, key=lambda r: r.name):
            teardown = f"{r.teardown_seconds:.1f}s" if r.teardown_seconds is not None else "-"
            tr.write_line(
                f"  {r.name:<{width}}  setup {r.setup_seconds:6.1f}s  teardown {teardown:>6}  "
                f"{r.fixture}  {r.owner}"
            )
        total = sum(r.setup_seconds for r in summary.records)
        tr.write_line(f"  {len(summary.records)} cluster(s), {total:.1f}s of setup in total")
    for line in summary.templates:
        tr.write_line(line)
    if settings.pool:
        for line in pool_line(summary, settings).splitlines():
            tr.write_line(line)
    if settings.recycle and summary.records:
        for line in recycle_line(summary).splitlines():
            tr.write_line(line)
    kept = [r for r in summary.records if r.kept]
    for r in kept:
        tr.write_line(f"kept cluster {r.name} (test {r.owner}) in host namespace {r.namespace}:", yellow=True)
        tr.write_line(f"  1. {r.port_forward_command}")
        tr.write_line(f"  2. kubectl --kubeconfig {r.kubeconfig} get pods -A")
        tr.write_line(f"  delete it with: kubectl delete namespace {r.namespace}")
    for error in summary.errors:
        tr.write_line(f"WARNING: {error}", yellow=True)
    if summary.leaks:
        tr.write_line(
            "WARNING: pytest-vcluster: host namespaces still present after teardown (leaked): "
            + ", ".join(sorted(set(summary.leaks))),
            yellow=True,
            bold=True,
        )


def pool_line(summary: Summary, settings: Settings) -> str:
    """One line on the warm pool: claims, acquire time, cold clusters, what the filler made and left."""
    import statistics

    pool = summary.pool
    asked = pool.claimed + pool.cold
    parts = [f"pool (size {settings.pool}, key {pool.key or '?'}): {pool.claimed} of {asked} eligible cluster(s) "
             f"claimed from the pool"]
    if pool.acquire_seconds:
        parts.append(f"acquire p50 {statistics.median(pool.acquire_seconds):.2f}s, "
                     f"max {max(pool.acquire_seconds):.2f}s")
    parts.append(f"{pool.cold} cold")
    parts.append(f"{pool.made} made ahead of demand")
    if pool.failed:
        parts.append(f"{pool.failed} failed to start")
    if settings.pool_keep:
        parts.append(f"{pool.kept} kept for the next run")
    else:
        parts.append(f"{pool.deleted_unclaimed} unclaimed deleted")
    lines = [", ".join(parts)]
    lines.extend(f"  {error}" for error in pool.errors)
    return "\n".join(lines)


def recycle_line(summary: Summary) -> str:
    """One line on recycling: clusters reset and handed on, reset times, tests that got a used cluster, and a
    line per cluster deleted instead, with the reason."""
    import statistics

    pool = summary.pool
    parts = [f"recycling: {pool.recycled} cluster(s) reset and handed on"]
    if pool.reset_seconds:
        parts.append(f"reset p50 {statistics.median(pool.reset_seconds):.2f}s, max {max(pool.reset_seconds):.2f}s")
    parts.append(f"{pool.reused} test(s) got a recycled cluster")
    parts.append(f"{len(pool.discarded)} deleted instead")
    lines = [", ".join(parts)]
    lines.extend(f"  deleted {line}" for line in pool.discarded)
    return "\n".join(lines)


def diagnostics_section(clusters: list[Any]) -> list[tuple[str, str]]:
    """``(title, text)`` report sections for the clusters of a failed test."""
    sections = []
    for vc in clusters:
        text = (
            f"host namespace: {vc.host_namespace}\nkubeconfig: {vc.kubeconfig_path}\n"
            f"server: {vc.server}\n{vc.diagnostics()}"
        )
        sections.append((f"vcluster {vc.name}", text))
    return sections
