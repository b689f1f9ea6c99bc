"""What tests do with a virtual cluster, as methods of :class:`~pytest_vcluster.VCluster` (the mixin
:class:`ClusterVerbs`): apply manifests, wait for objects, run kubectl and helm, read logs, exec in pods,
forward ports, load images.

>>> vc.apply("manifests/")                        # files, YAML text, dicts; server-side apply, CRDs first
>>> vc.wait_for("deployment/web", "Available")
>>> with vc.port_forward("svc/web", 80) as url:
...     urllib.request.urlopen(url).read()

No pytest import: usable from any code. The module-level functions (manifest loading, target parsing,
condition matching, selectors) are pure and need no cluster.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    ApplyError,
    CommandError,
    ExecError,
    ManifestError,
    UnknownKindError,
    VClusterError,
    yaml_problem,
)
from .run import require, run
from .wait import wait_until

if TYPE_CHECKING:
    from .host import Host

#: the field manager of every server-side apply of :meth:`ClusterVerbs.apply`
FIELD_MANAGER = "pytest-vcluster"
#: files of a manifest directory that :func:`load_manifests` reads (in name order; subfolders are not read)
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
CRD_KIND = "CustomResourceDefinition"
CRD_GROUP = "apiextensions.k8s.io"
#: ``condition`` of :meth:`ClusterVerbs.wait_for` meaning "until the object is gone"
DELETE = "delete"
KUBECTL_INSTALL = "https://kubernetes.io/docs/tasks/tools/#kubectl"
#: HTTP statuses of an apply that are tried again (0: no answer; too many requests; a proxy or server not ready)
RETRIED_STATUSES = (0, 429, 502, 503, 504)

#: what :meth:`ClusterVerbs.apply` takes: a path (file or directory), YAML/JSON text, an object, a list of objects
Manifest = str | os.PathLike[str] | Mapping[str, Any] | Sequence[Mapping[str, Any]]
#: what :meth:`ClusterVerbs.wait_for` waits for: a condition type (``"Available"``, ``"Ready=False"``),
#: ``"delete"``, or a predicate on the object (a dict)
Condition = str | Callable[[dict[str, Any]], Any]


# ------------------------------------------------------------------------------------------ manifests


def load_manifests(manifest: Manifest) -> list[dict[str, Any]]:
    """The objects of ``manifest``, in order, as new dicts (the input is never changed).

    ``manifest`` is a path (``pathlib.Path`` or ``str``) of a file or of a directory (its ``*.yaml``,
    ``*.yml`` and ``*.json`` files in name order), YAML text (one or more ``---``-separated documents, or
    JSON), one object (a mapping) or a list of objects. A ``str`` is a path when it is one line naming an
    existing file or directory, or one line without ``": "`` (then a missing file is an error); otherwise it
    is text. Empty documents are skipped; a ``List`` (``kind: List``, or any ``...List`` with ``items``) gives
    its items. Every object needs ``apiVersion``, ``kind`` and ``metadata.name``:
    :class:`~pytest_vcluster.ManifestError` says which is missing, and where.
    """
    if isinstance(manifest, Mapping):
        docs: list[tuple[str, Any]] = [("the object", manifest)]
    elif isinstance(manifest, os.PathLike):
        docs = _read_path(Path(manifest))
    elif isinstance(manifest, str):
        docs = _read_path(Path(manifest)) if _is_path(manifest) else _parse_text(manifest, "the manifest text")
    elif isinstance(manifest, Sequence) and not isinstance(manifest, (bytes, bytearray)):
        docs = [(f"item {i + 1} of the list", item) for i, item in enumerate(manifest)]
    else:
        raise ManifestError(
            f"cannot apply a {type(manifest).__name__}: pass a path, YAML text, a dict or a list of dicts "
            "(a kubernetes model object: client.ApiClient().sanitize_for_serialization(obj))"
        )
    objects: list[dict[str, Any]] = []
    for where, doc in docs:
        objects.extend(_checked(where, doc))
    return objects


def _is_path(text: str) -> bool:
    if "\n" in text or not text.strip():
        return False
    with contextlib.suppress(OSError, ValueError):
        if Path(text).exists():
            return True
    stripped = text.strip()
    return ": " not in stripped and not stripped.startswith(("{", "[", "-", "#"))


def _read_path(path: Path) -> list[tuple[str, Any]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES)
        if not files:
            raise ManifestError(f"no manifest in directory {path}: it has no *.yaml, *.yml or *.json file")
    elif path.is_file():
        files = [path]
    else:
        raise ManifestError(f"manifest file {path} does not exist")
    docs: list[tuple[str, Any]] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"cannot read manifest file {file}: {exc}") from None
        if file.suffix.lower() == ".json":
            try:
                docs.append((str(file), json.loads(text)))
            except ValueError as exc:
                raise ManifestError(f"{file} is not valid JSON: {exc}") from None
        else:
            docs.extend(_parse_text(text, str(file)))
    return docs


def _parse_text(text: str, source: str) -> list[tuple[str, Any]]:
    import yaml

    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source} is not valid YAML: {yaml_problem(exc)}") from None
    if len(documents) == 1:
        return [(source, documents[0])]
    return [(f"{source}, document {i + 1}", doc) for i, doc in enumerate(documents)]


def _checked(where: str, doc: Any) -> list[dict[str, Any]]:
    """``doc`` as a list of valid objects (a ``...List`` gives its items); [] for an empty document."""
    if doc is None:
        return []
    if not isinstance(doc, Mapping):
        raise ManifestError(f"{where}: a manifest object must be a mapping, not a {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        objects: list[dict[str, Any]] = []
        for i, item in enumerate(doc["items"]):
            objects.extend(_checked(f"{where}, item {i + 1}", item))
        return objects
    missing = [field for field in ("apiVersion", "kind") if not isinstance(doc.get(field), str) or not doc[field]]
    meta = doc.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        missing.append("metadata.name")
    if missing:
        name = meta.get("name") if isinstance(meta, Mapping) else None
        what = f"{kind or 'object'}" + (f" {name}" if name else "")
        raise ManifestError(f"{where}: {what} has no {', '.join(missing)} (server-side apply needs all three)")
    return [copy.deepcopy(dict(doc))]


def is_crd(obj: Mapping[str, Any]) -> bool:
    """True for a CustomResourceDefinition (``apiextensions.k8s.io``)."""
    return obj.get("kind") == CRD_KIND and str(obj.get("apiVersion", "")).startswith(f"{CRD_GROUP}/")


def apply_order(objects: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int]]:
    """``(crds, rest)``: indexes of the CRDs, then of the others with Namespaces first (else in order)."""
    crds = [i for i, obj in enumerate(objects) if is_crd(obj)]
    others = [i for i, obj in enumerate(objects) if not is_crd(obj)]
    others.sort(key=lambda i: objects[i].get("kind") != "Namespace")
    return crds, others


# ------------------------------------------------------------------------------------ targets, conditions


def parse_target(target: str) -> tuple[str, str]:
    """``"deployment/web"`` -> ``("deployment", "web")``; ``"crd/widgets.example.com"`` -> ``("crd", ...)``.

    The type may be a kind, plural, singular or short name, optionally with its group
    (``deployments.apps/web``). A ``ValueError`` for anything but ``TYPE/NAME``."""
    if not isinstance(target, str):
        raise ValueError(f"a target is a 'kind/name' string, not {target!r}")
    kind, sep, name = target.strip().partition("/")
    if not sep or not kind or not name or "/" in name:
        raise ValueError(f"target {target!r} is not 'kind/name' (e.g. 'deployment/web', 'crd/widgets.example.com')")
    return kind, name


@dataclass(frozen=True)
class ResourceType:
    """One resource type of the cluster's discovery (what :func:`match_resource` chooses from)."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str = ""
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    preferred: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def names(self) -> set[str]:
        return {n.lower() for n in (self.plural, self.singular, self.kind, *self.short_names) if n}


def match_resource(word: str, types: Iterable[ResourceType]) -> ResourceType | None:
    """The resource type ``word`` names, as kubectl resolves it: a kind, plural, singular or short name
    (any case), optionally ``.group`` qualified (``deployments.apps``, ``widgets.example.com``).
    Several matches: preferred versions first, then the core group, then discovery order. None if none."""
    word = word.strip().lower()
    name, _, group = word.partition(".")
    candidates = list(types)
    found = [t for t in candidates if name in t.names() and (not group or t.group.lower() == group)]
    if not found and group:  # a dot that is no group separator
        found = [t for t in candidates if word in t.names()]
    if not found:
        return None
    order = {id(t): i for i, t in enumerate(found)}
    found.sort(key=lambda t: (not t.preferred, t.group != "", order[id(t)]))
    return found[0]


def parse_condition(condition: str) -> tuple[str, str]:
    """``"Available"`` -> ``("Available", "True")``; ``"Ready=False"`` and kubectl's ``"condition=Ready"``
    forms too. A ``ValueError`` for an empty one."""
    text = condition.strip()
    if text.lower().startswith("condition="):
        text = text[len("condition="):]
    ctype, sep, status = text.partition("=")
    if not ctype.strip() or (sep and not status.strip()):
        raise ValueError(f"condition {condition!r} is not a condition type such as 'Available' or 'Ready=False'")
    return ctype.strip(), status.strip() if sep else "True"


def _observed_stale(obj: Mapping[str, Any], observed: Any) -> bool:
    generation = (obj.get("metadata") or {}).get("generation")
    return isinstance(observed, int) and isinstance(generation, int) and observed < generation


def condition_met(obj: Mapping[str, Any], ctype: str, status: str = "True") -> bool:
    """True when ``status.conditions`` has type ``ctype`` with ``status`` (both any case), as ``kubectl wait
    --for=condition=...``: not while the controller has yet to see the object's latest generation
    (``status.observedGeneration`` or the condition's own ``observedGeneration`` below ``metadata.generation``)."""
    st = obj.get("status") or {}
    if not isinstance(st, Mapping) or _observed_stale(obj, st.get("observedGeneration")):
        return False
    for cond in st.get("conditions") or []:
        if not isinstance(cond, Mapping) or str(cond.get("type", "")).lower() != ctype.lower():
            continue
        if _observed_stale(obj, cond.get("observedGeneration")):
            return False
        return str(cond.get("status", "")).lower() == status.lower()
    return False


def describe_conditions(obj: Mapping[str, Any] | None) -> str:
    """One line of what an object's status says: its conditions (type=status, reason and message), or its phase."""
    if obj is None:
        return "no object"
    st = obj.get("status") or {}
    if not isinstance(st, Mapping):
        st = {}
    parts = []
    for cond in st.get("conditions") or []:
        if not isinstance(cond, Mapping):
            continue
        why = ": ".join(str(x) for x in (cond.get("reason"), cond.get("message")) if x)
        parts.append(f"{cond.get('type')}={cond.get('status')}" + (f" ({why})" if why else ""))
    text = f"conditions {', '.join(parts)}" if parts else "no conditions"
    if st.get("phase"):
        text += f"; phase {st['phase']}"
    if _observed_stale(obj, st.get("observedGeneration")):
        text += (f"; generation {obj['metadata']['generation']} not observed yet "
                 f"(observedGeneration {st['observedGeneration']})")
    return text


class _Seen:
    """A "not yet" value for :func:`wait_until` whose repr is what was seen (so its timeout message says it)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return self.text


# -------------------------------------------------------------------------------- selectors, ports, pods


def label_selector(selector: Mapping[str, Any]) -> str:
    """A label selector string: from a Service's ``spec.selector`` (a plain map) or a workload's
    ``spec.selector`` (``matchLabels`` / ``matchExpressions``)."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return ",".join(f"{k}={v}" for k, v in selector.items())
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise ValueError(f"unknown label selector operator {op!r}")
    return ",".join(parts)


def service_target_port(service: Mapping[str, Any], port: int | str) -> int | str:
    """The ``targetPort`` (a number or a container port's name) of the port of ``service`` whose
    ``port`` (or ``name``) is ``port``; ``targetPort`` defaults to ``port``. A ``VClusterError`` naming the
    service's ports when none matches."""
    meta = service.get("metadata") or {}
    ports = (service.get("spec") or {}).get("ports") or []
    for p in ports:
        if p.get("port") == port or (isinstance(port, str) and p.get("name") == port) or str(p.get("port")) == port:
            target = p.get("targetPort")
            return p["port"] if target is None or target == "" else target  # type: ignore[no-any-return]
    have = ", ".join(f"{p.get('port')}" + (f" ({p['name']})" if p.get("name") else "") for p in ports) or "none"
    raise VClusterError(f"service {meta.get('namespace', 'default')}/{meta.get('name')} has no port {port} "
                        f"(its ports: {have})")


def container_port(pod: Mapping[str, Any], port: int | str) -> int:
    """``port`` as a number: a number as is, a name looked up in the pod's containers' ``ports``."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
    meta = pod.get("metadata") or {}
    raise VClusterError(f"pod {meta.get('namespace', 'default')}/{meta.get('name')} has no container port "
                        f"named {port!r}")


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pick_pod(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """A Running pod not being deleted, Ready ones first (then by name); None if there is none."""
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
               and not (p.get("metadata") or {}).get("deletionTimestamp")]
    running.sort(key=lambda p: (not _pod_ready(p), (p.get("metadata") or {}).get("name", "")))
    return running[0] if running else None


# ---------------------------------------------------------------------------------------- commands


def require_kubectl() -> str:
    """The path of ``kubectl`` on PATH, or a :class:`~pytest_vcluster.core.errors.MissingToolError` saying how to get
    it."""
    return require("kubectl", f"vc.kubectl needs kubectl, but it is not on PATH: install it ({KUBECTL_INSTALL}) "
                              "and put it on PATH")


def helm_executable() -> str:
    """The Helm binary: ``$HELM_BIN`` or ``helm`` on PATH (a :class:`~pytest_vcluster.VClusterError` if missing)."""
    from .helm import require_helm

    return require_helm(os.environ.get("HELM_BIN") or "helm")


def _exec_status(error_channel: str) -> tuple[int | None, str]:
    """``(exit code, message)`` from an exec's error channel: 0 on ``Success``; the ``ExitCode`` cause of a
    ``Failure``; ``(None, message)`` when the command did not run (e.g. no such executable)."""
    import yaml

    if not error_channel.strip():
        return None, "the exec stream ended without a status"
    try:
        status = yaml.safe_load(error_channel)
    except yaml.YAMLError:
        return None, error_channel.strip()
    if not isinstance(status, Mapping):
        return None, error_channel.strip()
    if status.get("status") == "Success":
        return 0, ""
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return int(cause.get("message")), str(status.get("message") or "")
    return None, str(status.get("message") or error_channel.strip())


# ---------------------------------------------------------------------------------------- the mixin

_LOCK = threading.Lock()


def _lock_of(handle: object) -> threading.Lock:
    """A lock of ``handle`` (made on first use: the mixin has no ``__init__`` of its own)."""
    with _LOCK:
        lock: threading.Lock | None = getattr(handle, "_verbs_lock", None)
        if lock is None:
            lock = threading.Lock()
            handle._verbs_lock = lock  # type: ignore[attr-defined]
        return lock


class ClusterVerbs:
    """The verbs of :class:`~pytest_vcluster.VCluster` (mixed in): :meth:`apply`, :meth:`wait_for`,
    :meth:`kubectl`, :meth:`helm`, :meth:`helm_install`, :meth:`logs`, :meth:`exec`, :meth:`port_forward`
    and :meth:`load_image`. They need ``api_client`` (a ``kubernetes.client.ApiClient`` of the virtual
    cluster), ``kubeconfig_path``, ``host`` and ``name``."""

    api_client: Any
    kubeconfig_path: Path
    host: Host
    name: str
    _verbs_dynamic: Any = None
    _verbs_generation: int | None = None

    # ------------------------------------------------------------------ plumbing

    def _verbs_dir(self) -> Path:
        """A folder of this cluster's discovery caches (next to its kubeconfig, so it goes with it), emptied
        when the cluster was reset (``resets`` went up) since they were filled: a CRD of an earlier test is
        gone then, and a cached one would be a 404 instead of an "unknown kind"."""
        path = Path(self.kubeconfig_path).parent / f".{self.name}.verbs"
        with _lock_of(self):
            generation = getattr(self, "resets", 0)
            if getattr(self, "_verbs_generation", None) != generation:
                shutil.rmtree(path, ignore_errors=True)
                self._verbs_dynamic = None
                self._verbs_generation = generation
            path.mkdir(parents=True, exist_ok=True)
        return path

    def _dynamic(self) -> Any:
        """The ``kubernetes.dynamic.DynamicClient`` of the virtual cluster (made once, and again after a reset).

        Its discovery cache is a file of this cluster: the client's default, one file per server URL in the
        temp dir, would hand a later cluster on the same local port this one's API resources."""
        cache = self._verbs_dir() / "discovery.json"
        with _lock_of(self):
            if self._verbs_dynamic is not None:
                return self._verbs_dynamic
            from kubernetes import dynamic

            dynamic_client: Any = dynamic.DynamicClient  # untyped in the kubernetes client
            self._verbs_dynamic = wait_until(
                f"the discovery of virtual cluster {self.name}",
                lambda: dynamic_client(self.api_client, cache_file=str(cache)),
                timeout=60.0,
            )
            return self._verbs_dynamic

    def _command_env(self) -> dict[str, str]:
        # kubectl's (and helm's) discovery cache is keyed by server host:port: a cluster of its own, as above
        return {**os.environ, "KUBECACHEDIR": str(self._verbs_dir() / "kube-cache")}

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dynamic().resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise UnknownKindError(
                f"virtual cluster {self.name} serves no kind {kind} in {api_version}: a custom resource needs its "
                "CustomResourceDefinition applied first (or in the same apply call)"
            ) from None

    def _resource_types(self) -> dict[ResourceType, Any]:
        from kubernetes.dynamic.resource import ResourceList

        types: dict[ResourceType, Any] = {}
        for entry in self._dynamic().resources.search():
            for resource in entry if isinstance(entry, list) else [entry]:
                if isinstance(resource, ResourceList) or not getattr(resource, "name", None):
                    continue
                rtype = ResourceType(
                    group=resource.group or "", version=resource.api_version, kind=resource.kind,
                    plural=resource.name, singular=resource.singular_name or "",
                    short_names=tuple(resource.short_names or ()), namespaced=bool(resource.namespaced),
                    preferred=bool(resource.preferred),
                )
                types.setdefault(rtype, resource)
        return types

    def _resolve(self, word: str) -> tuple[ResourceType, Any]:
        """The resource type named ``word`` (kind, plural, short name...), from discovery (refreshed on a miss)."""
        for refresh in (False, True):
            if refresh:
                self._dynamic().resources.invalidate_cache()
            types = self._resource_types()
            found = match_resource(word, types)
            if found is not None:
                return found, types[found]
        raise UnknownKindError(f'virtual cluster {self.name} has no resource type "{word}" (no kind, plural or short '
                               "name of its discovery; `kubectl api-resources` lists them)")

    # ------------------------------------------------------------------ apply

    def apply(self, manifest: Manifest, namespace: str | None = None, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Server-side apply ``manifest`` (field manager ``pytest-vcluster``, conflicts forced): idempotent,
        like ``kubectl apply --server-side --force-conflicts``, through the Python client.

        ``manifest``: a path (a file, or a directory of ``*.yaml``/``*.yml``/``*.json`` read in name
        order), YAML text (several documents), a dict or a list of dicts (see :func:`load_manifests`).
        Namespaced objects without ``metadata.namespace`` go to ``namespace`` (default ``"default"``).
        CustomResourceDefinitions are applied first and awaited (Established, and their resources served by
        discovery, within ``timeout`` seconds), so a CRD and objects of it can come in one call; then
        Namespaces, then the rest in order. Returns the objects as the server stored them (dicts), in the
        order of ``manifest``.

        Raises :class:`~pytest_vcluster.ManifestError` (unreadable manifest),
        :class:`~pytest_vcluster.UnknownKindError` (a kind the cluster does not serve),
        :class:`~pytest_vcluster.ApplyError` (the server refused an object: its kind, name and the reason) and
        :class:`~pytest_vcluster.WaitTimeout` (a CRD not served in time, or the API unreachable).
        """
        objects = load_manifests(manifest)
        crds, rest = apply_order(objects)
        deadline = time.monotonic() + timeout
        applied: dict[int, dict[str, Any]] = {}
        for i in crds:
            applied[i] = self._apply_one(objects[i], namespace, timeout)
        if crds:
            self._wait_crds_served([applied[i] for i in crds], deadline)
        for i in rest:
            applied[i] = self._apply_one(objects[i], namespace, max(deadline - time.monotonic(), 10.0))
        return [applied[i] for i in range(len(objects))]

    def _apply_one(self, obj: dict[str, Any], namespace: str | None, timeout: float) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        from .wait import describe_error

        resource = self._resource(obj["apiVersion"], obj["kind"])
        body = copy.deepcopy(obj)
        meta = body["metadata"]
        ns: str | None = None
        if resource.namespaced:
            ns = meta.get("namespace") or namespace or "default"
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        label = f"{obj['kind']} {ns + '/' if ns else ''}{meta['name']}"

        def attempt() -> Any:
            try:
                return ("applied", resource.server_side_apply(body=body, name=meta["name"], namespace=ns,
                                                              field_manager=FIELD_MANAGER, force_conflicts=True))
            except ApiException as exc:
                if exc.status in RETRIED_STATUSES:
                    raise  # retried by wait_until
                # a refusal, raised below at once: also a 500, which is how the API server answers a field of
                # the wrong type in an apply patch ("failed to create typed patch object")
                return exc

        result = wait_until(f"server-side apply of {label} to virtual cluster {self.name}", attempt, timeout=timeout)
        if isinstance(result, ApiException):
            raise ApplyError(f"virtual cluster {self.name} refused {label} ({obj['apiVersion']}): "
                             f"{describe_error(result)}")
        return result[1].to_dict()  # type: ignore[no-any-return]

    def _wait_crds_served(self, crds: Sequence[Mapping[str, Any]], deadline: float) -> None:
        """Wait until each CRD is Established and every served version of it is in discovery and listable."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        dyn = self._dynamic()
        crd_resource = self._resource(f"{CRD_GROUP}/v1", CRD_KIND)
        for crd in crds:
            name = crd["metadata"]["name"]
            established = self._wait_object(crd_resource, name, None, "Established",
                                            what=f"CustomResourceDefinition {name} to be Established",
                                            kind=CRD_KIND, timeout=max(deadline - time.monotonic(), 1.0))
            spec = established.get("spec") or {}
            group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
            versions = [v["name"] for v in spec.get("versions") or [] if v.get("served", True)]
            dyn.resources.invalidate_cache()

            def served(group: str = group, kind: str = kind, versions: list[str] = versions) -> bool:
                for version in versions:
                    try:
                        resource = dyn.resources.get(api_version=f"{group}/{version}", kind=kind)
                    except ResourceNotFoundError:
                        dyn.resources.invalidate_cache()
                        return False
                    dyn.get(resource, limit=1)  # a 404 (not served yet) is "not yet" for wait_until
                return True

            wait_until(f"kind {kind} of CustomResourceDefinition {name} to be served (versions {', '.join(versions)})",
                       served, timeout=max(deadline - time.monotonic(), 1.0))

    # ------------------------------------------------------------------ wait_for

    def wait_for(
        self, target: str, condition: Condition, namespace: str | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Wait until the object ``target`` meets ``condition``; returns it (a dict).

        ``target`` is ``TYPE/NAME``: ``"deployment/web"``, ``"crd/widgets.example.com"``, ``"po/x"``,
        ``"job/y"``, ``"widget/w"``... (the type resolved through discovery like kubectl: kind, plural,
        singular or short name, optionally ``.group``). ``namespace`` (default ``"default"``) is ignored for
        cluster-scoped types. ``condition``:

        - a condition type, ``"Available"``, ``"Established"``, ``"Ready"``, ``"Complete"``...:
          ``status.conditions[type=X].status == "True"`` once the controller observed the latest generation
          (``"Ready=False"`` waits for another status);
        - ``"delete"``: until the object is gone (returns it as last seen, ``{}`` if it was gone already);
        - a callable taking the object (a dict) and returning something truthy when done (a ``KeyError``,
          ``IndexError``, ``TypeError`` or ``AttributeError`` it raises counts as "not yet").

        A missing object is "not yet" (except for ``"delete"``). On timeout
        :class:`~pytest_vcluster.WaitTimeout` says what was awaited, what it saw last (the object's
        conditions) and the object's events; :class:`~pytest_vcluster.UnknownKindError` at once for a type
        the cluster does not serve.
        """
        word, name = parse_target(target)
        rtype, resource = self._resolve(word)
        ns = (namespace or "default") if rtype.namespaced else None
        label = f"{rtype.kind.lower()}/{name}" + (f" in namespace {ns}" if ns else "")
        if callable(condition):
            what = f"{label} to satisfy {getattr(condition, '__name__', repr(condition))}"
        elif condition == DELETE:
            what = f"{label} to be deleted"
        else:
            ctype, status = parse_condition(condition)
            what = f"{label} to be {ctype}" + (f"={status}" if status != "True" else "")
        return self._wait_object(resource, name, ns, condition, what=what, kind=rtype.kind, timeout=timeout)

    def _wait_object(self, resource: Any, name: str, ns: str | None, condition: Condition, *, what: str,
                     kind: str, timeout: float) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        dyn = self._dynamic()
        deleting = condition == DELETE
        parsed = parse_condition(condition) if isinstance(condition, str) and not deleting else None
        last: dict[str, Any] = {}

        def probe() -> Any:
            try:
                obj = dyn.get(resource, name=name, namespace=ns).to_dict()
            except ApiException as exc:
                if deleting and exc.status == 404:
                    return ("gone", last.get("obj") or {})
                raise  # 404: not there yet; transient: retried; others raised
            last["obj"] = obj
            seen = describe_conditions(obj)
            if deleting:
                return _Seen(f"still there: {seen}")
            if parsed is not None:
                return obj if condition_met(obj, *parsed) else _Seen(seen)
            assert callable(condition)
            try:
                done = condition(obj)
            except (KeyError, IndexError, TypeError, AttributeError) as exc:
                return _Seen(f"{seen}; the condition raised {type(exc).__name__}: {exc}")
            return obj if done else _Seen(seen)

        def events() -> str:
            return self._events_text(kind, name, ns)

        result = wait_until(what, probe, timeout=timeout, diagnose=events)
        return result[1] if deleting else result  # type: ignore[no-any-return]

    def _events_text(self, kind: str, name: str, ns: str | None) -> str:
        """The object's events, oldest first, as ``kubectl describe`` lists them."""
        from kubernetes import client

        from .ready import MAX_EVENTS, _event_time

        core = client.CoreV1Api(self.api_client)
        selector = f"involvedObject.name={name},involvedObject.kind={kind}"
        if ns:
            found = core.list_namespaced_event(ns, field_selector=selector, _request_timeout=10).items
        else:
            found = core.list_event_for_all_namespaces(field_selector=selector, _request_timeout=10).items
        found.sort(key=_event_time)
        lines = [f"events of {kind.lower()}/{name}:"]
        for ev in found[-MAX_EVENTS:]:
            count = f" (x{ev.count})" if ev.count and ev.count > 1 else ""
            lines.append(f"  {ev.type} {ev.reason}: {(ev.message or '').strip()}{count}")
        if len(lines) == 1:
            lines.append("  (none)")
        return "\n".join(lines)

    # ------------------------------------------------------------------ kubectl, helm

    def kubectl(self, *args: str | os.PathLike[str], input: str | None = None,
                check: bool = True, timeout: float = 60.0) -> str:
        """Run ``kubectl --kubeconfig <this cluster's> ARGS...`` (kubectl from PATH); returns its stdout.

        ``input`` goes to its stdin (``vc.kubectl("apply", "-f", "-", input=yaml_text)``). A non-zero exit
        (with ``check``) or a run over ``timeout`` seconds raises :class:`~pytest_vcluster.CommandError`
        naming the command, the exit code and stderr; a missing kubectl, a
        :class:`~pytest_vcluster.VClusterError` saying how to get it.
        """
        command = [require_kubectl(), "--kubeconfig", str(self.kubeconfig_path), *map(str, args)]
        return run(command, input=input, check=check, timeout=timeout, env=self._command_env(), error=CommandError)

    def helm(self, *args: str | os.PathLike[str], input: str | None = None,
             check: bool = True, timeout: float = 600.0) -> str:
        """Run ``helm --kubeconfig <this cluster's> ARGS...`` (``$HELM_BIN``, else ``helm`` from PATH); returns
        its stdout. Failures as :meth:`kubectl`."""
        command = [helm_executable(), "--kubeconfig", str(self.kubeconfig_path), *map(str, args)]
        return run(command, input=input, check=check, timeout=timeout, env=self._command_env(), error=CommandError)

    def helm_install(
        self,
        release: str,
        chart: str | os.PathLike[str],
        namespace: str = "default",
        values: Mapping[str, Any] | None = None,
        wait: bool = True,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """``helm upgrade --install RELEASE CHART`` into ``namespace`` (created if missing) with ``values``;
        with ``wait``, helm's ``--wait`` (its Deployments' pods ready, Services with a cluster IP...) within
        ``timeout`` seconds. Returns the release as ``helm -o json`` describes it (``name``, ``version``,
        ``info.status``...). A failure raises :class:`~pytest_vcluster.CommandError` with helm's message."""
        import yaml

        with tempfile.TemporaryDirectory(prefix="pytest-vcluster-helm-") as tmp:
            args = ["upgrade", "--install", release, str(chart), "--namespace", namespace, "--create-namespace",
                    "--output", "json", "--timeout", f"{max(int(timeout), 1)}s"]
            if values:
                values_file = Path(tmp) / "values.yaml"
                values_file.write_text(yaml.safe_dump(dict(values), sort_keys=False), encoding="utf-8")
                args += ["--values", str(values_file)]
            if wait:
                args.append("--wait")
            out = self.helm(*args, timeout=timeout + 60)
        start = out.find("{")
        try:
            return json.loads(out[start:]) if start >= 0 else {"output": out}
        except ValueError:
            return {"output": out}

    # ------------------------------------------------------------------ pods

    def logs(self, pod: str, namespace: str = "default", container: str | None = None,
             previous: bool = False) -> str:
        """The log of ``pod``'s container (its only one unless ``container`` is given); ``previous``: of its
        previous run (after a restart). A ``kubernetes.client.ApiException`` if there is none."""
        from kubernetes import client

        response: Any = client.CoreV1Api(self.api_client).read_namespaced_pod_log(
            pod, namespace, container=container, previous=previous or None, _preload_content=False,
            _request_timeout=60,
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    def exec(self, pod: str, command: str | Sequence[str], namespace: str = "default",
             container: str | None = None, *, timeout: float = 60.0) -> str:
        """Run ``command`` in ``pod`` (a list as is; a string through ``sh -c``) and return its stdout.

        A non-zero exit, a command that cannot start, or one still running after ``timeout`` seconds raises
        :class:`~pytest_vcluster.ExecError` with ``returncode``, ``stdout`` and ``stderr``; a missing pod, the
        client's ``ApiException``."""
        from kubernetes import client
        from kubernetes.stream import stream
        from kubernetes.stream.ws_client import ERROR_CHANNEL

        argv = ["sh", "-c", command] if isinstance(command, str) else [str(c) for c in command]
        shown = f"{shlex.join(argv)} in pod {namespace}/{pod}" + (f" (container {container})" if container else "")
        core = client.CoreV1Api(self.api_client)
        kwargs: dict[str, Any] = {"container": container} if container else {}
        resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=argv, stderr=True, stdin=False,
                      stdout=True, tty=False, _preload_content=False, **kwargs)
        try:
            resp.run_forever(timeout=timeout)
            still_running = resp.is_open()
            stdout = resp.read_stdout(timeout=0) or ""
            stderr = resp.read_stderr(timeout=0) or ""
            status = resp.read_channel(ERROR_CHANNEL, timeout=0) or ""
        finally:
            resp.close()
        if still_running:
            raise ExecError(f"{shown} did not finish within {timeout:.0f}s; stderr so far: {stderr.strip()!r}",
                            returncode=None, stdout=stdout, stderr=stderr)
        code, message = _exec_status(status)
        if code != 0:
            what = f"exited {code}" if code is not None else f"did not run: {message}"
            raise ExecError(f"{shown} {what}; stderr: {stderr.strip()!r}", returncode=code, stdout=stdout,
                            stderr=stderr)
        return stdout

    # ------------------------------------------------------------------ port_forward

    @contextlib.contextmanager
    def port_forward(self, target: str, port: int | str, namespace: str = "default", *,
                     timeout: float = 60.0) -> Iterator[str]:
        """Forward a local port to ``target``'s ``port``; yields ``http://127.0.0.1:<local port>``.

        ``target``: ``pod/x``, ``svc/x`` (the service's ``port``, mapped to its ``targetPort`` on a running
        pod behind its selector) or ``deploy/x`` (also ``replicaset/``, ``statefulset/``...: a running pod of
        its selector). A running pod is awaited up to ``timeout`` seconds; the pod is chosen once. Each
        connection opens its own stream through the virtual API server (``_portforward.PortForward``)."""
        from .portforward import PortForward, kubernetes_stream_opener

        pod_name, pod_port = self._forward_target(target, port, namespace, timeout)
        configuration = copy.deepcopy(self.api_client.configuration)
        opener = kubernetes_stream_opener(configuration, namespace, pod_name, pod_port)
        forward = PortForward(opener, name=f"{self.name}-{pod_name}-{pod_port}")
        try:
            yield f"http://{forward.host}:{forward.port}"
        finally:
            forward.close()

    def _forward_target(self, target: str, port: int | str, namespace: str, timeout: float) -> tuple[str, int]:
        """``(pod name, pod port)`` behind ``target`` and ``port``."""
        from kubernetes import client

        word, name = parse_target(target)
        rtype, resource = self._resolve(word)
        core = client.CoreV1Api(self.api_client)
        api = self.api_client
        pod: Mapping[str, Any]
        if rtype.group == "" and rtype.kind == "Pod":
            pod = self.wait_for(f"pods/{name}", lambda p: (p.get("status") or {}).get("phase") == "Running",
                                namespace=namespace, timeout=timeout)
            return name, container_port(pod, port)
        if rtype.group == "" and rtype.kind == "Service":
            service = api.sanitize_for_serialization(core.read_namespaced_service(name, namespace))
            target_port = service_target_port(service, port)
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                raise VClusterError(f"service {namespace}/{name} has no selector: no pod to forward to")
            pod = self._running_pod(label_selector(selector), f"service {namespace}/{name}", namespace, timeout)
            return pod["metadata"]["name"], container_port(pod, target_port)
        owner = self._dynamic().get(resource, name=name, namespace=namespace).to_dict()
        selector = (owner.get("spec") or {}).get("selector")
        if not isinstance(selector, Mapping) or not selector:
            raise VClusterError(f"cannot forward to {target}: a {rtype.kind} has no pod selector "
                                "(use pod/NAME, svc/NAME or a workload such as deploy/NAME)")
        pod = self._running_pod(label_selector(selector), f"{rtype.kind.lower()} {namespace}/{name}", namespace,
                                timeout)
        return pod["metadata"]["name"], container_port(pod, port)

    def _running_pod(self, selector: str, owner: str, namespace: str, timeout: float) -> Mapping[str, Any]:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)

        def find() -> Any:
            pods = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=10).items
            found = pick_pod(self.api_client.sanitize_for_serialization(p) for p in pods)
            return found or _Seen(f"{len(pods)} pod(s) with labels {selector}, none running")

        return wait_until(f"a running pod of {owner}", find, timeout=timeout)

    # ------------------------------------------------------------------ images

    def load_image(self, name: str) -> None:
        """Make the local image ``name`` available to the host's nodes (``self.host.load_image``): pods of
        this cluster can then run it with ``imagePullPolicy: Never`` or ``IfNotPresent``."""
        self.host.load_image(name)
