"""The host cluster: from a kubeconfig, or a kind cluster created (once, under a file lock) if missing."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import kubeconfig as _kubeconfig
from .cleanup import pid_alive
from .errors import HostError, NoContextError
from .once import locked
from .run import require, run
from .settings import Settings

log = logging.getLogger(__name__)

CIDR_PROBE_IP = "1.1.1.1"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
_VALID_RANGE = re.compile(r"[Tt]he range of valid IPs is\s+([0-9A-Fa-f:.]+/\d+(?:\s*,\s*[0-9A-Fa-f:.]+/\d+)*)")


def parse_service_cidr(message: str) -> str | None:
    """The service range from the API server's error for a ClusterIP outside it.

    ``... the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12``
    -> ``10.96.0.0/12``. With several ranges (dual stack) the IPv4 one is preferred.
    """
    match = _VALID_RANGE.search(message)
    if match is None:
        return None
    cidrs = [c.strip() for c in match.group(1).split(",") if c.strip()]
    for cidr in cidrs:
        if ":" not in cidr:
            return cidr
    return cidrs[0] if cidrs else None


#: the oldest host Kubernetes the chart supports (``kubeVersion`` of chart/Chart.yaml; a unit test checks them)
MIN_KUBERNETES = (1, 27)


def parse_version(git_version: str) -> tuple[int, int] | None:
    """``v1.33.13`` / ``v1.30.2+k3s1`` / ``v1.29.4-gke.100`` -> ``(1, 33)``; None when it is not such a string."""
    match = re.match(r"v?(\d+)\.(\d+)", git_version.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _git_version(body: bytes | str) -> str | None:
    """``gitVersion`` of a ``GET /version`` answer, None when the answer is not a Kubernetes version."""
    import json

    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return None
    version = data.get("gitVersion") if isinstance(data, dict) else None
    return str(version) if isinstance(version, str) and version else None


class Host:
    """The host cluster that virtual clusters are installed into.

    Attributes: ``kubeconfig_path`` (a file usable by kubectl/helm), ``context``, ``provider``
    (``kubeconfig`` or ``kind``), ``server`` and ``api_client`` (a ``kubernetes.client.ApiClient``).
    """

    def __init__(
        self,
        kubeconfig_path: Path,
        context: str | None = None,
        *,
        provider: str = "kubeconfig",
        image_loader: str | None = None,
        kind_cluster: str | None = None,
    ) -> None:
        self.kubeconfig_path = Path(kubeconfig_path)
        self.context = context
        self.provider = provider
        self.image_loader = image_loader
        self.kind_cluster = kind_cluster
        self.server = ""
        try:
            raw = _kubeconfig.load(self.kubeconfig_path.read_text())
            self.server = _kubeconfig.server_of(raw, context)
        except NoContextError as exc:
            fix = ("pass --vcluster-host-context=NAME with one of them, or leave it out to use the current context"
                   if context else "pass --vcluster-host-context=NAME with one of them, or fix its current-context")
            raise HostError(f"cannot use host kubeconfig {self.kubeconfig_path}: {exc}: {fix}") from None
        except (OSError, ValueError) as exc:
            raise HostError(
                f"cannot use host kubeconfig {self.kubeconfig_path}: {exc}: pass the kubeconfig of the host cluster "
                "(kubectl config view --raw --minify writes one)"
            ) from None
        if not self.server:
            raise HostError(
                f"cannot use host kubeconfig {self.kubeconfig_path}: its cluster has no server address: pass the "
                "kubeconfig of the host cluster (kubectl config view --raw --minify writes one)"
            )
        self._lock = threading.Lock()
        self._api_client: Any = None
        self._version: str | None = None
        self._service_cidr: str | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> Host:
        """A host from a kubeconfig file (no pytest needed); checks that it is reachable."""
        host = cls(Path(path), context)
        host.check_reachable()
        return host

    def __repr__(self) -> str:
        return f"<Host {self.provider} server={self.server} kubeconfig={self.kubeconfig_path}>"

    # ------------------------------------------------------------------ clients

    def new_configuration(self) -> Any:
        """A fresh ``kubernetes.client.Configuration`` for the host."""
        from kubernetes import client, config

        load_kube_config: Any = config.load_kube_config  # untyped in the kubernetes client

        def load() -> Any:
            configuration = client.Configuration()
            load_kube_config(
                config_file=str(self.kubeconfig_path),
                context=self.context,
                client_configuration=configuration,
                persist_config=False,
            )
            return configuration

        try:
            configuration = _kubeconfig.environ_race_safe(load)
        except Exception as exc:  # noqa: BLE001 - the kubernetes loader raises many kinds
            raise HostError(
                f"cannot load host kubeconfig {self.kubeconfig_path} (context {self.context}): {exc}"
            ) from exc
        return configuration

    def new_api_client(self) -> Any:
        from kubernetes import client

        return client.ApiClient(self.new_configuration())

    @property
    def api_client(self) -> Any:
        """The shared ``kubernetes.client.ApiClient`` of the host cluster."""
        with self._lock:
            if self._api_client is None:
                self._api_client = self.new_api_client()
            return self._api_client

    def core_v1(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    # ------------------------------------------------------------------ facts

    def check_reachable(self, timeout: float = 15) -> str:
        """Ask the API server its version; one clear :class:`HostError` naming the server when it fails
        (unreachable, refusing the credentials, not a Kubernetes API server, or older than
        :data:`MIN_KUBERNETES`)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        configuration = self.new_configuration()
        configuration.retries = False  # a refused connection is reported at once, not after three retries
        where = f"(kubeconfig {self.kubeconfig_path}{', context ' + self.context if self.context else ''})"
        try:
            with client.ApiClient(configuration) as api_client:
                response: Any = client.VersionApi(api_client).get_code(
                    _request_timeout=timeout, _preload_content=False
                )
                body = response.data
        except ApiException as exc:
            if exc.status in (401, 403):
                raise HostError(
                    f"the host cluster's API server at {self.server} {where} refused its credentials "
                    f"(HTTP {exc.status} {exc.reason}): pass a kubeconfig whose user may use the host cluster"
                ) from None
            if exc.status is not None and exc.status >= 500:
                raise HostError(
                    f"the host cluster's API server at {self.server} {where} is not healthy: GET /version answered "
                    f"HTTP {exc.status} {exc.reason}. Check the host cluster, or point --vcluster-host-kubeconfig at "
                    "a healthy one."
                ) from None
            raise HostError(
                f"the server at {self.server} {where} is not a Kubernetes API server: GET /version answered "
                f"HTTP {exc.status} {exc.reason}. Point --vcluster-host-kubeconfig at the host cluster's kubeconfig."
            ) from None
        except Exception as exc:  # noqa: BLE001 - connection errors come in many kinds
            reason = getattr(exc, "reason", None) or exc
            raise HostError(
                f"cannot reach the host cluster's API server at {self.server} {where}: "
                f"{reason}. Start the host cluster or point --vcluster-host-kubeconfig at a running one."
            ) from None
        version = _git_version(body)
        if version is None:
            raise HostError(
                f"the server at {self.server} {where} is not a Kubernetes API server: GET /version answered "
                f"{body[:80]!r}. Point --vcluster-host-kubeconfig at the host cluster's kubeconfig."
            )
        numbers = parse_version(version)
        if numbers is not None and numbers < MIN_KUBERNETES:
            minimum = ".".join(map(str, MIN_KUBERNETES))
            raise HostError(
                f"the host cluster at {self.server} {where} runs Kubernetes {version}, but pytest-vcluster needs "
                f"{minimum} or newer (the chart's kubeVersion): use a newer host cluster"
            )
        self._version = version
        return self._version

    @property
    def version(self) -> str:
        if self._version is None:
            self.check_reachable()
        return self._version or "unknown"

    def service_cidr(self, namespace: str) -> str:
        """The host's Service range, discovered once (a dry-run Service with an out-of-range ClusterIP)."""
        with self._lock:
            if self._service_cidr is not None:
                return self._service_cidr
        cidr = self._discover_service_cidr(namespace)
        with self._lock:
            self._service_cidr = cidr
        return cidr

    def _discover_service_cidr(self, namespace: str) -> str:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        probe = client.V1Service(
            metadata=client.V1ObjectMeta(generate_name="pytest-vcluster-cidr-probe-"),
            spec=client.V1ServiceSpec(cluster_ip=CIDR_PROBE_IP, ports=[client.V1ServicePort(port=443)]),
        )
        try:
            client.CoreV1Api(self.api_client).create_namespaced_service(
                namespace, probe, dry_run="All", _request_timeout=30
            )
        except ApiException as exc:
            cidr = parse_service_cidr(f"{exc.body or ''} {exc.reason or ''}")
            if cidr is not None:
                return cidr
            log.warning("pytest-vcluster: cannot parse the service range from: %s", exc.body)
        else:
            log.warning("pytest-vcluster: %s is inside the host's service range", CIDR_PROBE_IP)
        log.warning("pytest-vcluster: using the default service range %s", DEFAULT_SERVICE_CIDR)
        return DEFAULT_SERVICE_CIDR

    def check_persistence(self, values: Mapping[str, Any]) -> None:
        """With ``controlPlane.etcd.persistence.enabled`` the claim needs a StorageClass on the host: the one
        named by ``...persistence.storageClass``, else the host's default. A :class:`HostError` naming the
        missing class and the fix when the host lacks it (instead of a claim Pending until the timeout)."""
        from kubernetes import client

        persistence: Any = values
        for key in ("controlPlane", "etcd", "persistence"):
            persistence = persistence.get(key) if isinstance(persistence, Mapping) else None
        if not isinstance(persistence, Mapping) or persistence.get("enabled") is not True:
            return
        wanted = str(persistence.get("storageClass") or "")
        classes: list[Any] = client.StorageV1Api(self.api_client).list_storage_class(_request_timeout=30).items
        names = sorted(str(c.metadata.name) for c in classes)
        listed = ", ".join(names) or "none"
        if wanted:
            if wanted not in names:
                raise HostError(
                    f"controlPlane.etcd.persistence.storageClass={wanted!r}: the host cluster at {self.server} "
                    f"has no such StorageClass (it has: {listed}): name one of them, or leave it empty for the "
                    "host's default class"
                )
            return
        default = "storageclass.kubernetes.io/is-default-class"
        if not any((c.metadata.annotations or {}).get(default) == "true" for c in classes):
            raise HostError(
                f"controlPlane.etcd.persistence.enabled=true needs a StorageClass, but the host cluster at "
                f"{self.server} has no default one (it has: {listed}): set "
                "controlPlane.etcd.persistence.storageClass=NAME, mark a class default "
                f"(annotation {default}=true), or turn persistence off"
            )

    # ------------------------------------------------------------------ images

    def load_image(self, name: str) -> None:
        """Make a local (docker) image available to the host's nodes.

        kind: ``kind load docker-image``. kubeconfig: runs the ``--vcluster-image-loader`` command
        with the image name appended (and ``KUBECONFIG`` set to the host's kubeconfig).
        """
        if self.provider == "kind" and self.kind_cluster:
            command = [require_kind(), "load", "docker-image", name, "--name", self.kind_cluster]
        elif self.image_loader:
            command = [*shlex.split(self.image_loader), name]
        else:
            raise HostError(
                f"cannot load image {name!r}: a host given by kubeconfig has no way to load images. "
                "Pass --vcluster-image-loader='COMMAND' (run as COMMAND IMAGE, with KUBECONFIG set to the host's), "
                "or use --vcluster-host=kind"
            )
        _run(command, what=f"loading image {name!r}", timeout=600,
             env={**os.environ, "KUBECONFIG": str(self.kubeconfig_path)})

    def close(self) -> None:
        with self._lock:
            api_client, self._api_client = self._api_client, None
        if api_client is not None:
            with contextlib.suppress(Exception):
                api_client.close()


# --------------------------------------------------------------------------- providers


#: where to get kind, and Docker (the container runtime kind's nodes run in)
KIND_INSTALL = "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
DOCKER_INSTALL = "https://docs.docker.com/engine/install/"
#: the container runtimes kind finds on PATH by itself (``KIND_EXPERIMENTAL_PROVIDER`` names one instead)
KIND_RUNTIMES = ("docker", "podman", "nerdctl")


def kind_missing(env: Mapping[str, str]) -> list[str]:
    """What keeps a kind host from running here: ``kind`` when it is not on PATH, and ``docker`` (or the runtime
    ``KIND_EXPERIMENTAL_PROVIDER`` names) when none of kind's container runtimes is; empty when kind can run."""
    missing = [] if shutil.which("kind") else ["kind"]
    named = env.get("KIND_EXPERIMENTAL_PROVIDER", "").strip()
    if not any(shutil.which(runtime) for runtime in ((named,) if named else KIND_RUNTIMES)):
        missing.append(named or "docker")
    return missing


def kubeconfig_env_hint(env: Mapping[str, str]) -> str:
    """The sentence saying that ``$KUBECONFIG``, when set, is not used implicitly, and how to use it ("" when unset)."""
    named = env.get("KUBECONFIG", "").strip(os.pathsep).strip()
    if not named:
        return ""
    use = ('pass --vcluster-host-kubeconfig="$KUBECONFIG" to use it' if os.pathsep not in named
           else "pass --vcluster-host-kubeconfig=FILE with one of its files to use it")
    return f" $KUBECONFIG ({named}) is not used implicitly: {use}."


def no_host_message(missing: list[str], env: Mapping[str, str]) -> str:
    """The one message of ``--vcluster-host=auto`` with no host kubeconfig given and kind unable to run."""
    named = env.get("KIND_EXPERIMENTAL_PROVIDER", "").strip()
    reasons = {
        "kind": f"`kind` is not on PATH (install it: {KIND_INSTALL})",
        "docker": f"`docker` is not on PATH (kind's nodes are Docker containers; install Docker: {DOCKER_INSTALL})",
    }
    said = [reasons.get(item) or f"`{item}` is not on PATH (KIND_EXPERIMENTAL_PROVIDER={named} names it as kind's "
            "container runtime)" for item in missing]
    return (
        "no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig (or VCLUSTER_HOST_KUBECONFIG, ini "
        "vcluster_host_kubeconfig) when given, else a kind cluster, but no kubeconfig was given and kind cannot run "
        f"here: {'; '.join(said)}. Install what is missing, or pass --vcluster-host-kubeconfig=PATH to use an "
        "existing cluster." + kubeconfig_env_hint(env)
    )


def require_kind() -> str:
    return require("kind", "--vcluster-host=kind needs the `kind` binary, which is not on PATH: install kind "
                           f"({KIND_INSTALL}) or use --vcluster-host=kubeconfig --vcluster-host-kubeconfig=PATH")


def require_helm() -> str:
    """The helm binary every virtual cluster is installed with (checked before any slow set-up)."""
    from .helm import require_helm as helm_binary

    return helm_binary()


def choose_provider(settings: Settings, env: Mapping[str, str]) -> str:
    """``kubeconfig`` or ``kind`` for ``--vcluster-host``. ``auto``: the host kubeconfig given by
    ``--vcluster-host-kubeconfig`` / ``VCLUSTER_HOST_KUBECONFIG`` / ini (already in settings), else kind;
    ``$KUBECONFIG`` and ``~/.kube/config`` are never used implicitly. A :class:`HostError` (before anything
    is created anywhere) when ``auto`` has neither."""
    if settings.host != "auto":
        return settings.host
    if settings.host_kubeconfig is not None:
        return "kubeconfig"
    missing = kind_missing(env)
    if missing:
        raise HostError(no_host_message(missing, env))
    return "kind"


def _run(command: list[str], *, what: str, timeout: float, env: Mapping[str, str] | None = None) -> str:
    return run(command, what=what, timeout=timeout, env=env, error=HostError)


def kind_state_dir() -> Path:
    """Where runs on this machine coordinate over kind clusters (stable across runs, per user)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"pytest-vcluster-{uid}" / "kind"


def kind_marker(state_dir: Path, cluster: str) -> Path:
    """File recording that a pytest-vcluster run created the kind cluster (so a run deletes it at the end)."""
    return state_dir / f"{cluster}.created"


def _users_dir(state_dir: Path, cluster: str) -> Path:
    return state_dir / f"{cluster}.users"


def live_users(state_dir: Path, cluster: str, *, except_run: str = "") -> list[str]:
    """Runs (ids) using the kind cluster whose process is alive; entries of dead runs are removed."""
    users: list[str] = []
    folder = _users_dir(state_dir, cluster)
    for entry in sorted(folder.glob("*")) if folder.is_dir() else []:
        try:
            pid, registered = int(entry.read_text().strip() or 0), entry.stat().st_mtime
        except (OSError, ValueError):
            pid, registered = 0, 0.0
        if not pid_alive(pid, registered):
            with contextlib.suppress(OSError):
                entry.unlink()
            continue
        if entry.name != except_run:
            users.append(entry.name)
    return users


def ensure_kind(
    settings: Settings,
    state_dir: Path,
    *,
    run_id: str = "",
    run_pid: int | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> Host:
    """The kind cluster ``--vcluster-kind-cluster``: reused if present, else created (once, under a lock), from
    ``--vcluster-kind-config`` when given (kind's own cluster config: nodes, their roles, networking).

    ``run_id``/``run_pid`` register the run as a user of the cluster (``run_pid`` is the process that
    ends the run: the xdist controller), so the cluster is deleted only when its last live user ends.
    """
    kind = require_kind()
    require_helm()  # before minutes of creating a cluster and building an image that helm would then install
    name = settings.kind_cluster
    state_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = state_dir / f"{name}.kubeconfig"
    with locked(state_dir / f"{name}.lock", timeout=900):
        if run_id:
            users = _users_dir(state_dir, name)
            users.mkdir(parents=True, exist_ok=True)
            (users / run_id).write_text(str(run_pid or os.getpid()))
        clusters = _run([kind, "get", "clusters"], what="listing kind clusters", timeout=60).split()
        if name not in clusters:
            config = f", config {settings.kind_config}" if settings.kind_config else ""
            progress(f"creating kind cluster {name} (node image {settings.kind_image or 'kind default'}{config})")
            started = time.monotonic()
            command = [kind, "create", "cluster", "--name", name, "--wait", "180s"]
            if settings.kind_image:
                command += ["--image", settings.kind_image]
            if settings.kind_config:
                command += ["--config", str(settings.kind_config)]
            kind_marker(state_dir, name).write_text(str(run_pid or os.getpid()))
            try:
                _run(command, what="creating kind cluster", timeout=900)
            except HostError:
                # kind removes a half-made cluster itself; nothing is left for a later run to delete.
                with contextlib.suppress(OSError):
                    kind_marker(state_dir, name).unlink()
                raise
            progress(f"kind cluster {name}: created in {time.monotonic() - started:.1f}s")
        text = _run([kind, "get", "kubeconfig", "--name", name], what="reading kind kubeconfig", timeout=60)
        _kubeconfig.write(kubeconfig, _kubeconfig.load(text))
    host = Host(kubeconfig, f"kind-{name}", provider="kind", kind_cluster=name, image_loader=settings.image_loader)
    host.check_reachable()
    return host


def delete_kind_if_created(settings: Settings, state_dir: Path, *, run_id: str = "") -> str | None:
    """At the end of a run: delete the kind cluster if a pytest-vcluster run created it, it is not kept,
    and no other live run uses it (a killed run's cluster is deleted by the next run that ends).

    With ``--vcluster-kind-keep`` the cluster is handed over to the user: no later run deletes it.
    """
    name = settings.kind_cluster
    marker = kind_marker(state_dir, name)
    if not state_dir.is_dir():
        return None
    with locked(state_dir / f"{name}.lock", timeout=900):
        if run_id:
            entry = _users_dir(state_dir, name) / run_id
            if not entry.exists():
                return None  # this run never used the kind cluster
            with contextlib.suppress(OSError):
                entry.unlink()
        if not marker.exists():
            return None
        if settings.kind_keep:
            with contextlib.suppress(OSError):
                marker.unlink()
            return None
        if live_users(state_dir, name, except_run=run_id):
            return None
        kind = shutil.which("kind")
        if kind is None:
            return None
        try:
            _run([kind, "delete", "cluster", "--name", name], what="deleting kind cluster", timeout=300)
        except HostError as exc:
            return str(exc)
        with contextlib.suppress(OSError):
            marker.unlink()
        with contextlib.suppress(OSError):
            (state_dir / f"{name}.kubeconfig").unlink()
    return None


def open_host(
    settings: Settings,
    state_dir: Path,
    env: Mapping[str, str],
    *,
    run_id: str = "",
    run_pid: int | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> Host:
    """The host cluster for these settings, checked reachable (``state_dir``: see :func:`kind_state_dir`)."""
    provider = choose_provider(settings, env)
    if provider == "kind":
        return ensure_kind(settings, state_dir, run_id=run_id, run_pid=run_pid, progress=progress)
    path = settings.host_kubeconfig
    if path is None:
        raise HostError(
            "--vcluster-host=kubeconfig needs a kubeconfig: pass --vcluster-host-kubeconfig=PATH "
            "or set VCLUSTER_HOST_KUBECONFIG." + kubeconfig_env_hint(env)
        )
    host = Host(path, settings.host_context, provider="kubeconfig", image_loader=settings.image_loader)
    host.check_reachable()
    require_helm()  # before building the syncer image that helm would then install
    return host
