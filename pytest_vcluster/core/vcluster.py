"""The :class:`VCluster` handle: one virtual cluster on a host cluster, usable without pytest.

>>> from pytest_vcluster import Host, VCluster
>>> host = Host.from_kubeconfig("host.kubeconfig")
>>> with VCluster.create(host, set={"syncer.logLevel": "debug"}) as vc:
...     kubernetes.client.CoreV1Api(vc.api_client).list_namespace()
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import images as _images
from . import kubeconfig as _kubeconfig
from . import labels as _labels
from . import naming as _naming
from . import ready as _ready
from . import recycle as _recycle
from . import snapshot as _snapshot
from .cleanup import delete_cluster_scoped, wait_namespaces_gone
from .contract import contract
from .errors import ConditionTimeout, NotReadyError, ResetError, SnapshotError, VClusterError, forbidden
from .host import Host
from .kubernetes import version_layer
from .portforward import PortForward, kubernetes_stream_opener
from .settings import DEFAULT_SYNCER_BASE_IMAGE, chart_version
from .snapshot import Snapshot
from .values import resolve_values, set_values, under_service_cidr
from .verbs import ClusterVerbs
from .wait import Deadline, describe_error, wait_until

log = logging.getLogger(__name__)
T = TypeVar("T")

API_PORT = contract.API_PORT
SERVICE_PORT = contract.SERVICE_PORT


#: pre-minted probe tokens (valid for an hour) are used by a reset within this many seconds
PROBE_TOKENS_FRESH_SECONDS = 1800.0


def pod_security_level(values: Mapping[str, Any]) -> str:
    """The chart value ``podSecurity`` of the merged ``values`` (the chart's default when unset).

    A :class:`~pytest_vcluster.VClusterError` naming the value and the levels when it is none of them (the
    chart's schema would refuse it too, but only after the host namespace was made and labelled)."""
    level = values.get(contract.VALUE_POD_SECURITY, contract.POD_SECURITY_DEFAULT)
    if level not in contract.POD_SECURITY_LEVELS:
        raise VClusterError(f"chart value {contract.VALUE_POD_SECURITY}={level!r} is not valid: use one of "
                            f"{', '.join(contract.POD_SECURITY_LEVELS)}")
    return str(level)


def pod_security_labels(level: str) -> dict[str, str]:
    """Pod Security Admission labels of the host namespace of a cluster at ``level``: the host then checks
    the synced pods (and pod ``R-0``) at that level too. None for ``privileged``."""
    prefix = contract.POD_SECURITY_LABEL_PREFIX
    return {f"{prefix}/{key}": value for key, value in contract.pod_security_settings(level).items()}


def _object_kind_name_namespace(obj: Any) -> tuple[str | None, str | None]:
    if isinstance(obj, Mapping):
        meta = obj.get("metadata") or {}
        return meta.get("name"), meta.get("namespace")
    meta = getattr(obj, "metadata", None)
    return getattr(meta, "name", None), getattr(meta, "namespace", None)


class VCluster(ClusterVerbs):
    """A running virtual cluster.

    Attributes:
        name: the cluster's name (also its Helm release name ``R``).
        host_namespace: the host namespace ``N`` holding it.
        api_client: a ``kubernetes.client.ApiClient`` authenticated to the virtual cluster (admin).
        kubeconfig_path: a kubeconfig file for kubectl/helm in subprocesses (valid while it lives).
        host: the :class:`~pytest_vcluster.Host` it runs on.
    """

    def __init__(
        self,
        host: Host,
        name: str,
        host_namespace: str,
        *,
        kubeconfig_path: Path,
        api_client: Any,
        server: str,
        forward: PortForward | None,
        owned_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.name = name
        self.release = name
        self.host_namespace = host_namespace
        self.kubeconfig_path = kubeconfig_path
        self.api_client = api_client
        self.server = server
        self._forward = forward
        self._owned_dir = owned_dir
        self._deleted = False
        self._lock = threading.Lock()
        self.setup_seconds: float = 0.0
        self.teardown_seconds: float = 0.0
        self.phase_seconds: dict[str, float] = {}
        #: the chart values it was installed with, and its chart's version (what a fork of it reuses)
        self.values: dict[str, Any] = {}
        self.chart_version: str | None = None
        #: its first-ready state (:meth:`reset` goes back to it); read from the host namespace when ``None``
        self.baseline: _recycle.Baseline | None = None
        #: how often it was reset, and what the last reset did
        self.resets = 0
        self.last_reset: _recycle.ResetReport | None = None
        #: the admin kubeconfig as made (:meth:`_hand_on` writes it again for the next handle)
        self._kubeconfig: dict[str, Any] | None = None
        #: probe tokens of the next reset, minted ahead (:meth:`_mint_probe_tokens`), and when
        self._probe_tokens: tuple[float, list[str]] | None = None
        self._probe_minting: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<VCluster {self.name} in host namespace {self.host_namespace} at {self.server}>"

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        host: Host,
        *,
        name: str | None = None,
        values: Mapping[str, Any] | None = None,
        set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002 - mirrors helm --set
        chart: str | os.PathLike[str] | None = None,
        timeout: float = 180.0,
        connect: str = "auto",
        labels: Mapping[str, str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        helm: Any = None,
        keep_on_error: bool = False,
        fork: Snapshot | None = None,
        baseline: bool = False,
        syncer_image: str | None = None,
        syncer_base_image: str = DEFAULT_SYNCER_BASE_IMAGE,
        progress: Callable[[str], None] | None = None,
        chart_values: Mapping[str, Any] | None = None,
        kubernetes: str | None = None,
    ) -> VCluster:
        """Create a virtual cluster and wait until it is ready (bounded by ``timeout`` seconds).

        ``values`` and ``set`` (``{"a.b": 1}`` or ``["a.b=1"]``) are chart values on top of the
        discovered ``serviceCIDR``; ``chart`` defaults to the chart shipped with pytest-vcluster.
        ``fork``: a :class:`~pytest_vcluster.Snapshot` (:meth:`snapshot`) the new cluster starts from:
        its values under ``values``, every virtual object of it written into the new cluster once its
        API is ready (see :meth:`fork`).
        ``baseline``: record the state the cluster has once ready (kept in its own etcd), so that
        :meth:`reset` can bring it back to it later (about 0.1 s more).
        ``syncer_image``: ``None``, the chart's default; ``"auto"``, this package's own syncer image, built from
        ``syncer_base_image`` and handed to the host when its nodes lack it (as the plugin does; ``progress``
        gets a line per step); ``REPOSITORY:TAG``, an image the host can start.
        ``kubernetes``: the Kubernetes version of the control plane, a minor of the chart's table
        (``kubernetes-versions.yaml``), e.g. ``"1.35"``; ``None``, the chart's default. A fork runs its template's.
        ``chart_values``: values already resolved by :func:`~pytest_vcluster.core.values.resolve_values` (every
        layer, a ``fork``'s values too, as the plugin's manager does), installed as given over the discovered
        ``serviceCIDR``; instead of ``values``, ``set`` and ``syncer_image``.
        On failure the host namespace is deleted (unless ``keep_on_error``) and
        :class:`~pytest_vcluster.VClusterError` says what was awaited and why it failed.
        """
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from .helm import Helm
        from .settings import default_chart_path

        started = time.monotonic()
        # Without pytest there is no run to count in: each standalone cluster is a run of its own.
        standalone_run = _naming.new_run_id()
        if name is None:
            name = _naming.make_name(standalone_run, f"p{os.getpid() % 10000}", 1)
        if not _naming.is_valid_name(name):
            raise VClusterError(f"{name!r} cannot name a virtual cluster: use at most "
                                 f"{_naming.MAX_RELEASE_NAME} of a-z, 0-9 and '-', starting with a letter")
        chart_path = Path(chart).resolve() if chart is not None else default_chart_path()
        if chart_values is not None and (values is not None or set is not None or syncer_image is not None
                                         or kubernetes is not None):
            raise VClusterError("VCluster.create(): chart_values= are resolved already: give values=, set=, "
                                "syncer_image= and kubernetes= to resolve_values, not with them")
        own = chart_values is None  # values to resolve here: none on the plugin's path
        set_layer = set_values(set, where="VCluster.create()") if own else None
        image = (_images.chart_values(host, syncer_image, base_image=syncer_base_image, progress=progress)
                 if own else None)
        version = chart_version(chart_path) if chart_path.is_dir() else None
        if fork is not None:
            _snapshot.check_usable(fork, version)
        # The one resolution (the host's serviceCIDR goes under it once the namespace exists).
        version_values = version_layer(chart_path, kubernetes, fork_values=fork.values if fork is not None else None,
                                       where="VCluster.create()") if own else None
        resolved = chart_values if chart_values is not None else resolve_values(
            fork=fork.values if fork is not None else None, image=image, kubernetes=version_values, values=values,
            set=set_layer)
        # Checked before anything exists on the host: the namespace is labelled with it.
        pod_security = pod_security_level(resolved)
        owned_dir, workdir_path = _workdir(name, workdir)
        namespace = name
        ns_labels = dict(labels) if labels is not None else _labels.namespace_labels(standalone_run, "standalone")
        ns_labels.update(pod_security_labels(pod_security))
        core = host.core_v1()
        deadline = Deadline(timeout)
        phases: dict[str, float] = {}

        def lap(phase: str, since: float) -> float:
            now = time.monotonic()
            phases[phase] = now - since
            return now

        t = time.monotonic()
        try:
            core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=ns_labels)),
                _request_timeout=30,
            )
        except ApiException as exc:
            if owned_dir is not None:
                shutil.rmtree(owned_dir, ignore_errors=True)
            raise forbidden(exc.body or "", f"cannot create host namespace {namespace}") or VClusterError(
                f"cannot create host namespace {namespace}: HTTP {exc.status} {exc.reason}"
                + (": it already exists (choose another name)" if exc.status == 409 else "")
            ) from None
        t = lap("namespace", t)
        forward: PortForward | None = None
        state: _recycle.Baseline | None = None
        try:
            installed = under_service_cidr(resolved, host.service_cidr(namespace))
            t = lap("service-cidr", t)
            host.check_persistence(installed)
            helm = helm if helm is not None else Helm(host.kubeconfig_path, host.context)
            helm.install(name, namespace, chart_path, installed, timeout=max(deadline.remaining, 10))
            t = lap("helm-install", t)
            try:
                secret = _ready.wait_host_side(
                    core, namespace, name, deadline, provider=host.provider, kind_cluster=host.kind_cluster
                )
                t = lap("pod-ready", t)
                forward, server = _connect(host, namespace, name, connect)
                kubeconfig_path, api_client, kubeconfig = _open_client(secret, name, server, workdir_path)
                _ready.wait_virtual_side(api_client, server, deadline)
                t = lap("virtual-api", t)
                if fork is not None:
                    _snapshot.restore(host, namespace, name, fork)
                    _snapshot.wait_crds_served(api_client, deadline)
                    t = lap("restore", t)
                if baseline:
                    state = _recycle.take_baseline(host, namespace, name, api_client)
                    lap("baseline", t)
            except ConditionTimeout as exc:
                details = _ready.diagnostics(core, namespace, name)
                if forward is not None and forward.last_error:
                    details += f"\nlast port-forward error: {forward.last_error}"
                raise _ready.not_ready_error(name, timeout, exc, details) from None
        except BaseException as exc:
            if forward is not None:
                forward.close()
            if keep_on_error:
                log.warning("pytest-vcluster: keeping host namespace %s of failed cluster %s", namespace, name)
            else:
                with contextlib.suppress(Exception):
                    core.delete_namespace(namespace, propagation_policy="Background", _request_timeout=30)
                delete_cluster_scoped(host.api_client, namespace)
                if owned_dir is not None:
                    shutil.rmtree(owned_dir, ignore_errors=True)
            if isinstance(exc, (VClusterError, KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, ApiException):
                refused = forbidden(exc.body or "", f"creating virtual cluster {name} in host namespace {namespace}")
                if refused is not None:
                    raise refused from None
                raise VClusterError(
                    f"creating virtual cluster {name} in host namespace {namespace} failed: "
                    f"HTTP {exc.status} {exc.reason}: {(exc.body or '')[:500]}"
                ) from exc
            raise
        vc = cls(
            host,
            name,
            namespace,
            kubeconfig_path=kubeconfig_path,
            api_client=api_client,
            server=server,
            forward=forward,
            owned_dir=owned_dir,
        )
        vc._kubeconfig = kubeconfig
        vc.setup_seconds = time.monotonic() - started
        vc.phase_seconds = phases
        vc.values = installed
        vc.chart_version = version
        vc.baseline = state
        return vc

    @classmethod
    def attach(
        cls,
        host: Host,
        name: str,
        *,
        connect: str = "auto",
        workdir: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
    ) -> VCluster:
        """Connect to a virtual cluster that is already running: release ``name`` in host namespace
        ``name`` (a cluster made by :meth:`create`, e.g. one claimed from the warm pool). Fails at once
        with :class:`~pytest_vcluster.VClusterError` when its pod is neither Ready nor marked ready by its syncer
        (``contract.CONDITION_CLUSTER_READY``) or its kubeconfig Secret is
        missing; otherwise waits (bounded by ``timeout``) for the API and ServiceAccount ``default/default``.
        The handle owns the cluster: :meth:`delete` deletes its host namespace.
        """
        from kubernetes.client.exceptions import ApiException

        started = time.monotonic()
        core = host.core_v1()
        pod_name = contract.control_plane_pod(name)
        secret_name = contract.kubeconfig_secret_name(name)
        try:
            pod = core.read_namespaced_pod(pod_name, name, _request_timeout=10)
            secret = core.read_namespaced_secret(secret_name, name, _request_timeout=10)
        except ApiException as exc:
            raise VClusterError(
                f"cannot attach to virtual cluster {name}: HTTP {exc.status} {exc.reason} reading pod {pod_name} "
                f"or Secret {secret_name} in host namespace {name}"
                + (" (no such cluster: create it with VCluster.create)" if exc.status == 404 else "")
            ) from None
        if not _ready.cluster_ready(pod):
            phase = getattr(pod.status, "phase", None)
            raise VClusterError(
                f"cannot attach to virtual cluster {name}: pod {pod_name} in host namespace {name} is not Ready "
                f"(nor marked {contract.CONDITION_CLUSTER_READY} by its syncer since it last was; phase {phase})"
            )
        owned_dir, workdir_path = _workdir(name, workdir)
        forward: PortForward | None = None
        try:
            forward, server = _connect(host, name, name, connect)
            kubeconfig_path, api_client, kubeconfig = _open_client(secret, name, server, workdir_path)
            _ready.wait_virtual_side(api_client, server, Deadline(timeout))
        except ConditionTimeout as exc:
            if forward is not None:
                forward.close()
            raise _ready.not_ready_error(name, timeout, exc, _ready.diagnostics(core, name, name)) from None
        except BaseException:
            if forward is not None:
                forward.close()
            if owned_dir is not None:
                shutil.rmtree(owned_dir, ignore_errors=True)
            raise
        vc = cls(host, name, name, kubeconfig_path=kubeconfig_path, api_client=api_client, server=server,
                 forward=forward, owned_dir=owned_dir)
        vc._kubeconfig = kubeconfig
        vc.setup_seconds = time.monotonic() - started
        vc.phase_seconds = {"attach": vc.setup_seconds}
        return vc

    # ------------------------------------------------------------------ snapshots and forks

    def snapshot(self) -> Snapshot:
        """The cluster's state now: every object of its virtual API (read from its etcd), with the chart
        values and chart version it was made with. Forks made from it start from this state; the
        snapshot outlives the cluster (e.g. prepare a template, take a snapshot, delete the template)."""
        if self._deleted:
            raise SnapshotError(f"cannot take a snapshot of virtual cluster {self.name}: it was deleted")
        return _snapshot.take(self.host, self.host_namespace, self.release, chart_version=self.chart_version,
                              values=self.values)

    def fork(self, **options: Any) -> VCluster:
        """A new virtual cluster starting from this one's state: ``VCluster.create(host, fork=self.snapshot(),
        **options)``. Every virtual object is copied (CRDs, custom objects, RBAC, namespaces, ConfigMaps,
        Secrets, Deployments, pods...); the template's workloads start again in the fork's own host
        namespace. The fork has its own certificates and service-account key, so no credential of the
        template or of another fork works in it; ServiceAccount tokens are issued by the fork."""
        return type(self).create(self.host, fork=self.snapshot(), **options)

    def reset(self, timeout: float = 60.0) -> _recycle.ResetReport:
        """Bring the cluster back to exactly the state it had when it was first ready (made with
        ``baseline=True``; for a fork: when the fork was ready), in about a second: every object the test
        created or changed is gone or restored (namespaces, also those with finalizers; CRDs and their objects;
        webhooks; APIServices; RBAC; PVCs and their volumes; Events; Leases; Nodes), its pods are removed
        from the host at once, and every ServiceAccount token minted before is refused. Returns what it did;
        :class:`~pytest_vcluster.ResetError` when the cluster is not verifiably fresh within ``timeout``
        (then delete it: it must not be used again)."""
        if self._deleted:
            raise ResetError(f"cannot reset virtual cluster {self.name}: it was deleted")
        if self.baseline is None:
            self.baseline = _recycle.load_baseline(self.host, self.host_namespace, self.release)
        tokens = None
        if self._probe_minting is not None:
            self._probe_minting.join(timeout=10)
            self._probe_minting = None
            minted, self._probe_tokens = self._probe_tokens, None
            if minted is not None and time.monotonic() - minted[0] < PROBE_TOKENS_FRESH_SECONDS:
                tokens = minted[1]
        report = _recycle.reset(self.host, self.host_namespace, self.release, self.api_client, self.baseline,
                                timeout=timeout, tokens=tokens)
        if report.adopted:
            self.baseline = self.baseline.adopting(report.adopted)
        self.resets += 1
        self.last_reset = report
        return report

    # ------------------------------------------------------------------ helpers

    def host_name(self, kind_or_obj: Any, name: str | None = None, namespace: str | None = None) -> str:
        """The name the syncer gives a virtual object in the host namespace.

        ``vc.host_name("Pod", "web", "default")`` or ``vc.host_name(pod_object)`` (a kubernetes model
        or a dict with ``metadata``) -> ``web-x-default-x-<release>`` (hashed when over 63 characters).
        """
        if not isinstance(kind_or_obj, str):
            obj_name, obj_namespace = _object_kind_name_namespace(kind_or_obj)
            name = name or obj_name
            namespace = namespace or obj_namespace
        if not name:
            raise ValueError("host_name needs the object's name")
        return _naming.translate_host_name(name, namespace or "default", self.release)

    def wait(self, what: str, probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.5) -> T:
        """Call ``probe`` until it returns something truthy and return that (API 404s and transient
        errors count as "not yet"); on timeout :class:`~pytest_vcluster.WaitTimeout` names ``what``,
        the last value seen and the virtual cluster's Warning events (e.g. ``SyncError``).

        >>> vc.wait("pod web to run", lambda: core.read_namespaced_pod("web", "default").status.phase == "Running")
        """
        from kubernetes import client

        def warnings() -> str:
            lines = _ready.virtual_warnings(client.CoreV1Api(self.api_client))
            return "\n".join(["warnings in the virtual cluster:", *lines])

        return wait_until(what, probe, timeout=timeout, interval=interval, diagnose=warnings)

    def diagnostics(self) -> str:
        """The pod's status, the host namespace's events, the containers' last log lines, and the
        Warning events inside the virtual cluster (``SyncError``: an object the host refused)."""
        from kubernetes import client

        try:
            text = _ready.diagnostics(self.host.core_v1(), self.host_namespace, self.release)
        except Exception as exc:  # noqa: BLE001
            text = f"(no diagnostics: {exc})"
        try:
            warnings = _ready.virtual_warnings(client.CoreV1Api(self.api_client))
        except Exception as exc:  # noqa: BLE001
            warnings = [f"  (cannot list: {describe_error(exc)})"]
        return "\n".join([text, "warnings in the virtual cluster:", *warnings])

    @property
    def port_forward_command(self) -> str:
        """A kubectl command that forwards ``localhost:8443`` to the virtual API server."""
        context = f" --context {self.host.context}" if self.host.context else ""
        return (
            f"kubectl --kubeconfig {self.host.kubeconfig_path}{context} -n {self.host_namespace} "
            f"port-forward pod/{contract.control_plane_pod(self.release)} {contract.LOCAL_PORT}:{API_PORT}"
        )

    def write_standalone_kubeconfig(self, path: Path, local_port: int = contract.LOCAL_PORT) -> Path:
        """A kubeconfig for use with :attr:`port_forward_command` after this process exits."""
        current = _kubeconfig.load(self.kubeconfig_path.read_text())
        return _kubeconfig.write(
            path, _kubeconfig.rewrite(current, server=f"https://127.0.0.1:{local_port}", name=self.name)
        )

    # ------------------------------------------------------------------ teardown

    def disconnect(self) -> None:
        """Close the client and the port-forward, leaving the cluster running."""
        if self._forward is not None:
            self._forward.close()
        with contextlib.suppress(Exception):
            self.api_client.close()

    def delete(self, wait: bool = False, timeout: float = 120.0) -> None:
        """Disconnect, delete the host namespace (in the background unless ``wait``) and the kubeconfig file."""
        from kubernetes.client.exceptions import ApiException

        with self._lock:
            if self._deleted:
                return
            self._deleted = True
        started = time.monotonic()
        self.disconnect()
        core = self.host.core_v1()
        try:
            core.delete_namespace(self.host_namespace, propagation_policy="Background", _request_timeout=30)
        except ApiException as exc:
            if exc.status != 404:
                raise VClusterError(
                    f"cannot delete host namespace {self.host_namespace}: HTTP {exc.status} {exc.reason}"
                ) from None
        delete_cluster_scoped(self.host.api_client, self.host_namespace)
        if wait:
            wait_namespaces_gone(core, [self.host_namespace], timeout)
        self.forget_local_files()
        self.teardown_seconds = time.monotonic() - started

    def forget_local_files(self) -> None:
        """Remove what this handle wrote locally: its own work folder, or, in a given one (the plugin's
        basetemp, which outlives the cluster), its admin kubeconfig and the verbs' discovery caches. Done when
        the cluster is deleted, and when the plugin hands a recycled cluster on (the next handle writes its own)."""
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
        elif self.kubeconfig_path is not None:
            path = Path(self.kubeconfig_path)
            path.unlink(missing_ok=True)
            shutil.rmtree(path.parent / f".{self.name}.verbs", ignore_errors=True)

    def _hand_on(self) -> VCluster:
        """A new handle on this (just reset) cluster for its next user, with the port-forward of this one, a new
        API client and a new kubeconfig file (what the last user changed in theirs is gone); this handle is done
        (its :meth:`delete` does nothing). The plugin hands a recycled cluster on with it, with no host call."""
        with self._lock:
            if self._deleted or self._kubeconfig is None:
                raise VClusterError(f"cannot hand on virtual cluster {self.name}: its handle was deleted or "
                                    "has no kubeconfig of its own (attach to it instead)")
            self._deleted = True
        with contextlib.suppress(Exception):
            self.api_client.close()
        path = Path(self.kubeconfig_path)
        path.unlink(missing_ok=True)
        shutil.rmtree(path.parent / f".{self.name}.verbs", ignore_errors=True)
        kubeconfig_path, api_client = _write_client(self._kubeconfig, path)
        fresh = type(self)(self.host, self.name, self.host_namespace, kubeconfig_path=kubeconfig_path,
                           api_client=api_client, server=self.server, forward=self._forward,
                           owned_dir=self._owned_dir)
        self._forward, self._owned_dir = None, None
        fresh._kubeconfig = self._kubeconfig
        fresh.values, fresh.chart_version = self.values, self.chart_version
        fresh.baseline, fresh.resets, fresh.last_reset = self.baseline, self.resets, self.last_reset
        return fresh

    def _mint_probe_tokens(self) -> None:
        """Mint the probe tokens of this cluster's next :meth:`reset` now, in the background (the plugin does it
        when it hands a reset cluster on, so the next reset does not wait for them); they are used if the reset
        comes within :data:`PROBE_TOKENS_FRESH_SECONDS`, else it mints its own."""

        def mint() -> None:
            with contextlib.suppress(Exception):  # e.g. the test deleted ServiceAccount default: the reset mints
                self._probe_tokens = (time.monotonic(), _recycle.mint_probe_tokens(self.api_client))

        self._probe_minting = threading.Thread(target=mint, name=f"pytest-vcluster-probe-{self.name}", daemon=True)
        self._probe_minting.start()

    def __enter__(self) -> VCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


def _workdir(name: str, workdir: str | os.PathLike[str] | None) -> tuple[Path | None, Path]:
    """``(owned, path)``: the given folder (created), or a fresh temporary one the handle owns and removes."""
    if workdir is None:
        owned = Path(tempfile.mkdtemp(prefix=f"pytest-vcluster-{name}-"))
        return owned, owned
    path = Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    return None, path


def _open_client(secret: Any, name: str, server: str, workdir: Path) -> tuple[Path, Any, dict[str, Any]]:
    """The kubeconfig file (server ``server``), API client and kubeconfig made from kubeconfig Secret ``secret``."""
    source = _kubeconfig.from_secret(secret.data, name=name)
    kubeconfig = _kubeconfig.rewrite(source, server=server, name=name)
    kubeconfig_path, api_client = _write_client(kubeconfig, workdir / f"{name}.kubeconfig")
    return kubeconfig_path, api_client, kubeconfig


def _write_client(kubeconfig: dict[str, Any], path: Path) -> tuple[Path, Any]:
    """Write ``kubeconfig`` to ``path`` and open an API client with it."""
    from kubernetes import config as kube_config

    new_client: Any = kube_config.new_client_from_config_dict  # untyped in the kubernetes client

    path = _kubeconfig.write(path, kubeconfig)
    return path, _kubeconfig.environ_race_safe(lambda: new_client(kubeconfig))


def _connect(host: Host, namespace: str, release: str, connect: str) -> tuple[PortForward | None, str]:
    """``(forward, server URL)`` reaching the virtual API server."""
    service_host = f"{release}.{namespace}.svc"
    if connect == "auto":
        connect = "port-forward"
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            with contextlib.suppress(OSError):
                socket.getaddrinfo(service_host, SERVICE_PORT)
                connect = "service"
    if connect == "service":
        return None, f"https://{service_host}:{SERVICE_PORT}"
    pod = contract.control_plane_pod(release)
    opener = kubernetes_stream_opener(host.new_configuration(), namespace, pod, API_PORT)
    forward = PortForward(opener, name=release)
    return forward, f"https://127.0.0.1:{forward.port}"


__all__ = ["VCluster", "VClusterError", "NotReadyError"]
