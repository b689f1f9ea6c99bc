"""Helm through pyhelm3 (asyncio), run on one private event-loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from .errors import VClusterError, forbidden
from .run import require

T = TypeVar("T")


class _LoopThread:
    """A daemon thread running an asyncio loop; coroutines are submitted from any thread."""

    _instance: _LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pytest-vcluster-helm", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise


def _stderr_of(exc: BaseException) -> str:
    stderr = getattr(exc, "stderr", None)
    if isinstance(stderr, bytes):
        return stderr.decode(errors="replace").strip()
    return str(exc)


def require_helm(executable: str = "helm") -> str:
    return require(executable, f"pytest-vcluster needs the Helm CLI, but {executable!r} is not on PATH: "
                               "install Helm 3 (https://helm.sh/docs/intro/install/) and make sure `helm` is on PATH")


class Helm:
    """Installs and uninstalls releases of a chart on one host cluster."""

    def __init__(self, kubeconfig: Path, context: str | None = None, executable: str = "helm") -> None:
        import pyhelm3

        self.executable = require_helm(executable)
        self._client = pyhelm3.Client(executable=self.executable, kubeconfig=kubeconfig, kubecontext=context)
        self._charts: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return _LoopThread.get().run(coro, timeout)

    def chart(self, path: Path) -> Any:
        """The pyhelm3 chart at ``path`` (read once)."""
        with self._lock:
            cached = self._charts.get(path)
        if cached is not None:
            return cached
        try:
            chart = self._run(self._client.get_chart(path), timeout=120)
        except Exception as exc:
            raise VClusterError(f"helm cannot read the chart at {path}: {_stderr_of(exc)}") from exc
        with self._lock:
            self._charts[path] = chart
        return chart

    def install(
        self, release: str, namespace: str, chart_path: Path, values: Mapping[str, Any], timeout: float
    ) -> None:
        """``helm upgrade --install`` without waiting (readiness is checked separately)."""
        chart = self.chart(chart_path)
        try:
            self._run(
                self._client.install_or_upgrade_release(
                    release,
                    chart,
                    dict(values),
                    namespace=namespace,
                    create_namespace=False,
                    wait=False,
                    timeout=f"{max(int(timeout), 1)}s",
                ),
                timeout=timeout + 30,
            )
        except FutureTimeout:
            raise VClusterError(
                f"helm install of {release} into namespace {namespace} took over {timeout:.0f}s"
            ) from None
        except Exception as exc:
            stderr = _stderr_of(exc)
            refused = forbidden(stderr, f"helm install of release {release} into host namespace {namespace} failed")
            if refused is not None:
                raise refused from exc
            raise VClusterError(
                f"helm install of release {release} (chart {chart_path}) into namespace {namespace} failed: "
                f"{stderr}"
            ) from exc
