"""Recycling: a used virtual cluster brought back to the state it had when it was first ready.

A :class:`Baseline` is taken once, when a cluster first becomes ready: every key of its etcd (the virtual
API's objects), its API discovery, and the names of the objects the chart made in its host namespace. It is
kept in the cluster's own etcd (key :data:`BASELINE_KEY`, outside the virtual API's ``/registry/``), so any
process that later holds the cluster can reset it. :func:`reset` then, in this order:

1. mints probe tokens for ServiceAccount ``default/default`` (to prove below that old tokens are refused);
2. writes the baseline into etcd (:func:`reset_plan`): keys the test added are deleted, keys it changed or
   deleted are written back. Finalizers and graceful deletion are skipped: the API server, the
   controller-manager and the syncer see plain watch events. Every ServiceAccount comes back with a *new*
   UID, so every token minted before the reset is refused (a token names its ServiceAccount's UID);
3. deletes the test's host pods at once (grace period 0) and its host PVCs, remembering their volumes;
4. waits until nothing serves the old state: etcd holds the baseline again (controllers acting on events
   from before the reset are undone again), the host namespace holds only the chart's objects and the
   copies of baseline objects, the volumes of the test's claims are gone, discovery equals the baseline's
   (deleted CRDs and APIServices no longer served), the probe token is refused (the authenticator's
   ServiceAccount informer has seen the new UIDs) and, when the test made admission webhooks, a sentinel
   webhook written after the reset is called (the webhook informers have seen the deletions).

A reset that cannot get there in time raises :class:`ResetError`: the caller deletes the cluster instead of
handing it on. One upstream limit remains (kube-apiserver, ``pkg/kubeapiserver/options/authentication.go``:
``TokenSuccessCacheTTL: 10 * time.Second``, no flag): a token that authenticated successfully in the 10 s
before the reset is still accepted from the API server's cache until those 10 s are over.

No pytest import here.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .contract import contract
from .errors import ResetError
from .wait import Deadline, Expired, growing, poll

#: the etcd key of a cluster's baseline, in its own etcd (outside the virtual API's /registry/)
BASELINE_KEY = b"/pytest-vcluster/baseline"
FORMAT = 1

#: Objects of the running processes (Events, Leases, Nodes: the syncer keeps their status): baseline keys are
#: left as they are (the API server renews its identity lease every 10 s), keys the test added are deleted.
VOLATILE = re.compile(rb"^/registry/(events|leases|masterleases|minions)/")
SERVICE_ACCOUNTS = re.compile(rb"^/registry/serviceaccounts/")
#: The ServiceAccount's UID in its stored form: protobuf (ObjectMeta field 5, 36 bytes) or JSON.
_UUID = rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UID_PROTO = re.compile(rb"\x2a\x24(" + _UUID + rb")")
_UID_JSON = re.compile(rb'"uid":"(' + _UUID + rb')"')
#: etcd resources whose informers inside kube-apiserver serve admission: proven by a sentinel when touched
WEBHOOKS = {
    b"validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
    b"mutatingwebhookconfigurations": "MutatingWebhookConfiguration",
}
#: host kinds a virtual cluster's host namespace holds, as (list method of CoreV1Api, kind)
HOST_KINDS = (
    ("list_namespaced_pod", "Pod"),
    ("list_namespaced_service", "Service"),
    ("list_namespaced_config_map", "ConfigMap"),
    ("list_namespaced_secret", "Secret"),
    ("list_namespaced_persistent_volume_claim", "PersistentVolumeClaim"),
    ("list_namespaced_endpoints", "Endpoints"),
    ("list_namespaced_service_account", "ServiceAccount"),
    ("list_namespaced_resource_quota", "ResourceQuota"),
    ("list_namespaced_limit_range", "LimitRange"),
)
#: the etcd key prefix of the virtual object a synced host object of each kind is a copy of
VIRTUAL_PREFIX = {
    "Pod": "/registry/pods/",
    "Service": "/registry/services/specs/",
    "ConfigMap": "/registry/configmaps/",
    "Secret": "/registry/secrets/",
    "PersistentVolumeClaim": "/registry/persistentvolumeclaims/",
    "Endpoints": "/registry/services/endpoints/",
    "NetworkPolicy": "/registry/networkpolicies/",
    "EndpointSlice": "/registry/endpointslices/",
}
SENTINEL_LABEL = "reset.pytest-vcluster.io/sentinel"
#: tokens minted before a reset to prove afterwards that they are refused (one per probe, see :func:`reset`)
PROBE_TOKENS = 3


# --------------------------------------------------------------------------- the baseline


@dataclass(frozen=True)
class Baseline:
    """A cluster's state when it was first ready: etcd keys, discovery, and the chart's host objects."""

    keys: tuple[tuple[bytes, bytes], ...]
    #: ``group/version/resource`` of every served API resource outside the core group
    discovery: frozenset[str]
    #: names of the host namespace's objects that are not copies of virtual objects, by kind
    host: Mapping[str, frozenset[str]] = field(default_factory=dict)
    taken_at: float = 0.0

    def key_set(self) -> set[bytes]:
        return {k for k, _ in self.keys}

    def adopting(self, values: Mapping[bytes, bytes]) -> Baseline:
        """This baseline with the new ``values`` of some of its keys (see :attr:`ResetReport.adopted`)."""
        keys = tuple((k, values.get(k, v)) for k, v in self.keys)
        return Baseline(keys=keys, discovery=self.discovery, host=self.host, taken_at=self.taken_at)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "taken_at": self.taken_at,
            "discovery": sorted(self.discovery),
            "host": {kind: sorted(names) for kind, names in self.host.items()},
            "keys": [[base64.b64encode(k).decode(), base64.b64encode(v).decode()] for k, v in self.keys],
        }
        return gzip.compress(json.dumps(doc).encode(), compresslevel=6)

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str) -> Baseline:
        try:
            doc = json.loads(gzip.decompress(data))
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
            return cls(
                keys=tuple((base64.b64decode(k), base64.b64decode(v)) for k, v in doc["keys"]),
                discovery=frozenset(doc["discovery"]),
                host={kind: frozenset(names) for kind, names in doc["host"].items()},
                taken_at=float(doc["taken_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ResetError(f"{where} is not a pytest-vcluster baseline: {exc}") from None


# --------------------------------------------------------------------------- pure rules


def service_account_uid(value: bytes) -> bytes | None:
    """The UID in a stored ServiceAccount (protobuf or JSON), ``None`` when not found."""
    match = _UID_PROTO.search(value) or _UID_JSON.search(value)
    return match.group(1) if match else None


def with_uid(value: bytes, uid: bytes) -> bytes:
    """A stored ServiceAccount with its UID replaced by ``uid`` (36 bytes: protobuf lengths stay valid)."""
    old = service_account_uid(value)
    if old is None or len(uid) != len(old):
        return value
    return value.replace(old, uid)


def _same_but_uid(current: bytes, wanted: bytes) -> bool:
    uid = service_account_uid(current)
    return uid is not None and with_uid(wanted, uid) == current


def reset_plan(
    baseline: Iterable[tuple[bytes, bytes]],
    current: Mapping[bytes, bytes],
    *,
    rotate: bool,
    new_uid: Any = None,
) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """``(puts, deletes)`` turning etcd's ``current`` keys back into ``baseline`` (pure).

    Keys not in the baseline are deleted. Baseline keys that are missing or differ are written back, except
    :data:`VOLATILE` ones (left as the running processes keep them). ServiceAccounts: with ``rotate`` every
    one is written back with a new UID (``new_uid()``, default :func:`uuid.uuid4`), so tokens minted before
    are refused; without, one that differs from the baseline in more than its UID is written back with a new
    UID too.
    """
    make_uid = new_uid or (lambda: str(uuid.uuid4()).encode())
    wanted = dict(baseline)
    deletes = sorted(k for k in current if k not in wanted)
    puts: list[tuple[bytes, bytes]] = []
    for key, value in sorted(wanted.items()):
        now = current.get(key)
        if VOLATILE.match(key):
            if now is None:
                puts.append((key, value))
            continue
        if SERVICE_ACCOUNTS.match(key):
            if rotate or now is None or not _same_but_uid(now, value):
                puts.append((key, with_uid(value, make_uid())))
            continue
        if now != value:
            puts.append((key, value))
    return puts, deletes


def touched_resources(keys: Iterable[bytes]) -> set[bytes]:
    """The etcd resource names (``/registry/<group>/<resource>/`` or ``/registry/<resource>/``) of ``keys``."""
    resources: set[bytes] = set()
    for key in keys:
        parts = key.split(b"/")
        if len(parts) > 3:
            resources.add(parts[2])
            resources.add(parts[3])
    return resources


def foreign(baseline: Baseline, objects: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[str]:
    """Host objects neither the chart nor the syncer made, that a fresh cluster lacks (pure): nothing will
    remove them, so a cluster holding one cannot be reset. Endpoints and EndpointSlices are the host's own
    copies of Services, which go with them."""
    found: list[str] = []
    for kind, items in objects.items():
        if kind in ("Endpoints", "EndpointSlice"):
            continue
        for obj in items:
            meta = obj.get("metadata") or {}
            if (meta.get("labels") or {}).get(contract.LABEL_MANAGED_BY) is None and \
                    str(meta.get("name")) not in baseline.host.get(kind, frozenset()):
                found.append(f"{kind} {meta.get('name')}")
    return sorted(found)


def host_leftovers(
    baseline: Baseline,
    objects: Mapping[str, Iterable[Mapping[str, Any]]],
    baseline_keys: set[bytes],
) -> list[str]:
    """Host objects a fresh cluster would not have (pure): ``Kind name`` lines, empty when clean.

    An object is fresh when it is one the chart made (its name in the baseline) or a syncer copy of a virtual
    object that is in the baseline (the copy's annotations name the virtual object); Endpoints and the host
    controllers' EndpointSlices when they belong to such a Service.
    """
    def fresh(kind: str, meta: Mapping[str, Any]) -> bool:
        name = str(meta.get("name"))
        if meta.get("deletionTimestamp"):
            return False
        if (meta.get("labels") or {}).get(contract.LABEL_MANAGED_BY) is None:
            return name in baseline.host.get(kind, frozenset())
        annotations = meta.get("annotations") or {}
        vname = annotations.get(contract.ANNOTATION_OBJECT_NAME)
        vns = annotations.get(contract.ANNOTATION_OBJECT_NAMESPACE)
        prefix = VIRTUAL_PREFIX.get(kind)
        return bool(prefix and vname and vns is not None and f"{prefix}{vns}/{vname}".encode() in baseline_keys)

    services = {str((o.get("metadata") or {}).get("name")) for o in objects.get("Service", ())
                if fresh("Service", o.get("metadata") or {})}
    left: list[str] = []
    for kind, items in objects.items():
        for obj in items:
            meta = obj.get("metadata") or {}
            name = str(meta.get("name"))
            if kind == "Endpoints" and name in services and not meta.get("deletionTimestamp"):
                continue  # the host's endpoints controller keeps one per Service (labels copied, no annotations)
            labels = meta.get("labels") or {}
            if kind == "EndpointSlice" and labels.get(contract.LABEL_SLICE_MANAGED_BY) != \
                    contract.ENDPOINTSLICE_MANAGED_BY:
                # the host's slice controllers' (the mirroring one copies the annotations of our Endpoints copy);
                # the syncer's copy of a user's slice is judged below by its virtual slice
                owner = labels.get(contract.LABEL_SLICE_SERVICE_NAME)
                if owner in services and not meta.get("deletionTimestamp"):
                    continue
                if name in baseline.host.get(kind, frozenset()):
                    continue
                left.append(f"{kind} {name}")
                continue
            if not fresh(kind, meta):
                left.append(f"{kind} {name}")
    return sorted(left)


def discovery_of(document: Mapping[str, Any]) -> frozenset[str]:
    """``group/version/resource`` of an aggregated discovery document (``apidiscovery.k8s.io/v2``) of ``/apis``."""
    found: set[str] = set()
    for group in document.get("items") or []:
        name = (group.get("metadata") or {}).get("name", "")
        for version in group.get("versions") or []:
            for resource in version.get("resources") or []:
                found.add(f"{name}/{version.get('version')}/{resource.get('resource')}")
    return frozenset(found)


# --------------------------------------------------------------------------- reading a live cluster

DISCOVERY_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


def get_json(api_client: Any, path: str, *, accept: str = "application/json", timeout: float = 10.0) -> Any:
    """``GET path`` through a ``kubernetes.client.ApiClient``, as JSON: with the client's credentials, for every
    client generation the package supports (before v31 ``call_api(path, method, ...)``; since, ``param_serialize``
    then ``call_api(method, url, ...)``). A status of 400 or more raises ``ApiException``."""
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": accept}
    if hasattr(api_client, "param_serialize"):
        method, url, header_params, body, post = api_client.param_serialize(
            "GET", path, header_params=headers, auth_settings=["BearerToken"])
        response = api_client.call_api(method, url, header_params, body, post, _request_timeout=timeout)
        response.read()
    else:
        response = api_client.call_api(path, "GET", header_params=headers, auth_settings=["BearerToken"],
                                       _preload_content=False, _request_timeout=timeout)[0]
    if response.status >= 400:
        raise ApiException(status=response.status, reason=getattr(response, "reason", None))
    return json.loads(response.data)


def read_discovery(api_client: Any) -> frozenset[str]:
    """The virtual API's resources outside the core group, from its aggregated discovery."""
    return discovery_of(get_json(api_client, "/apis", accept=DISCOVERY_ACCEPT))


def host_objects(core_v1: Any, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The host namespace's objects of :data:`HOST_KINDS`, EndpointSlices, NetworkPolicies and RBAC, as plain dicts
    (metadata only); listed at once, from a few threads."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    api = core_v1.api_client
    listers: list[tuple[str, Any]] = [(kind, getattr(core_v1, method)) for method, kind in HOST_KINDS]
    listers += [
        ("EndpointSlice", client.DiscoveryV1Api(api).list_namespaced_endpoint_slice),
        ("NetworkPolicy", client.NetworkingV1Api(api).list_namespaced_network_policy),
        ("Role", client.RbacAuthorizationV1Api(api).list_namespaced_role),
        ("RoleBinding", client.RbacAuthorizationV1Api(api).list_namespaced_role_binding),
    ]
    with ThreadPoolExecutor(4) as pool:
        lists = pool.map(lambda lister: lister[1](namespace, _request_timeout=15).items, listers)
        return {kind: [_meta_only(item) for item in items] for (kind, _), items in zip(listers, lists, strict=True)}


def _meta_only(item: Any) -> dict[str, Any]:
    return {"metadata": {
        "name": item.metadata.name,
        "labels": item.metadata.labels or {},
        "annotations": item.metadata.annotations or {},
        "deletionTimestamp": item.metadata.deletion_timestamp,
    }}


def take_baseline(host: Any, namespace: str, release: str, api_client: Any) -> Baseline:
    """Read a ready cluster's state (see :class:`Baseline`) and keep it in the cluster's own etcd, under
    :data:`BASELINE_KEY` (outside ``/registry/``: the virtual API never sees it, the host namespace holds nothing
    more than a fresh cluster's, and it goes with the cluster)."""
    from .snapshot import etcd_of

    objects = host_objects(host.core_v1(), namespace)
    chart_made = {kind: frozenset(str(o["metadata"]["name"]) for o in items
                                  if contract.LABEL_MANAGED_BY not in o["metadata"]["labels"])
                  for kind, items in objects.items()}
    with etcd_of(host, namespace, release) as etcd:
        keys = tuple(etcd.items())
        baseline = Baseline(keys=keys, discovery=read_discovery(api_client), host=chart_made, taken_at=time.time())
        etcd.apply([(BASELINE_KEY, baseline.to_bytes())], [])
    return baseline


def load_baseline(host: Any, namespace: str, release: str) -> Baseline:
    """The baseline kept in the cluster's etcd; :class:`ResetError` when there is none."""
    from .errors import SnapshotError
    from .snapshot import etcd_of

    try:
        with etcd_of(host, namespace, release) as etcd:
            found = list(etcd.items(BASELINE_KEY))
    except (SnapshotError, OSError) as exc:
        raise ResetError(f"cannot read the baseline of virtual cluster {release} in host namespace {namespace}: "
                         f"{exc}") from None
    if not found:
        raise ResetError(
            f"cannot reset virtual cluster {release} in host namespace {namespace}: its etcd holds no baseline "
            f"({BASELINE_KEY.decode()}); only clusters made with VCluster.create(..., baseline=True), as the plugin "
            "makes them, can be reset"
        )
    return Baseline.from_bytes(found[0][1], where=f"{BASELINE_KEY.decode()} in the etcd of {release}")


# --------------------------------------------------------------------------- reset


@dataclass
class ResetReport:
    """What one reset did: its time (total and by phase), rounds until clean, keys written and deleted."""

    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    written: int = 0
    deleted: int = 0
    repaired: list[str] = field(default_factory=list)
    #: baseline keys the control plane rewrote after the reset wrote them back (e.g. a controller settling a
    #: status after the baseline was taken): their new values, adopted into the baseline
    adopted: dict[bytes, bytes] = field(default_factory=dict)


def _ordered(puts: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """ServiceAccounts last: once the authenticator has seen their new UIDs, it has seen the rest of the reset."""
    return sorted(puts, key=lambda kv: bool(SERVICE_ACCOUNTS.match(kv[0])))


def _short(keys: Iterable[bytes], limit: int = 5) -> str:
    names = [k.decode(errors="replace").removeprefix("/registry/") for k in keys]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _token_refused(virtual_api: Any, token: str) -> bool:
    from kubernetes import client

    review = client.AuthenticationV1Api(virtual_api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)), _request_timeout=10)
    return not (review.status and review.status.authenticated)


def _sentinel(kind: str, nonce: str) -> dict[str, Any]:
    plural = "validatingwebhookconfigurations" if kind.startswith("Validating") else "mutatingwebhookconfigurations"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": f"pytest-vcluster-reset-{nonce}"},
        "webhooks": [{
            "name": f"sentinel-{nonce}.reset.pytest-vcluster.io",
            "clientConfig": {"url": "https://127.0.0.1:1/"},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["configmaps"]}],
            "objectSelector": {"matchLabels": {SENTINEL_LABEL: nonce}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2,
        }],
        "_plural": plural,
    }


def prove_webhooks(virtual_api: Any, kind: str, deadline: float) -> None:
    """Prove kube-apiserver's ``kind`` informer has seen everything written before this call: a sentinel
    webhook created now must be called (its events come after the reset's on the same watch), then, once it is
    deleted again, a create it matched must pass (no webhook of the test still intercepts it either)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    nonce = uuid.uuid4().hex[:10]
    body = _sentinel(kind, nonce)
    plural = body.pop("_plural")
    objects = client.CustomObjectsApi(virtual_api)
    core = client.CoreV1Api(virtual_api)
    probe = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="reset-probe-",
                                                            labels={SENTINEL_LABEL: nonce}))
    marker = f"sentinel-{nonce}.reset.pytest-vcluster.io"

    def refused_by_sentinel() -> bool:
        try:
            core.create_namespaced_config_map("default", probe, dry_run="All", _request_timeout=10)
        except ApiException as exc:
            return marker in (exc.body or "")
        return False

    objects.create_cluster_custom_object("admissionregistration.k8s.io", "v1", plural, body, _request_timeout=10)
    try:
        _poll(f"the sentinel {kind} to be called", refused_by_sentinel, deadline)
    finally:
        objects.delete_cluster_custom_object("admissionregistration.k8s.io", "v1", plural, body["metadata"]["name"],
                                             _request_timeout=10)

    def passes() -> bool:
        try:
            core.create_namespaced_config_map("default", probe, dry_run="All", _request_timeout=10)
        except ApiException:
            return False
        return True

    _poll(f"a create to pass once the sentinel {kind} is deleted", passes, deadline)


def _poll(what: str, check: Any, deadline: float) -> None:
    """Until ``check()`` is true (pauses from 0.02 s growing to 0.2 s), by ``deadline`` (``time.monotonic()``);
    its errors are raised at once."""
    try:
        poll(check, Deadline(deadline - time.monotonic()), pause=growing(0.02, 1.5, 0.2), not_yet=lambda _exc: False)
    except Expired:
        raise ResetError(f"reset: timed out waiting for {what}") from None


def mint_probe_tokens(virtual_api: Any) -> list[str]:
    """:data:`PROBE_TOKENS` tokens of ServiceAccount ``default/default``, never shown to the API server: a reset
    proves with them that tokens minted before it are refused. Several: kube-apiserver caches a successful
    authentication for 10 s, so a probe that came too early would keep being accepted; each probe uses a token
    never shown to it before. Any time before the reset will do (the plugin mints them while the cluster waits
    for, or serves, its next test)."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    vcore = client.CoreV1Api(virtual_api)

    def mint(_: int) -> str:
        minted = vcore.create_namespaced_service_account_token(
            "default", "default",
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[],
                                                                               expiration_seconds=3600)),
            _request_timeout=10,
        )
        return str(minted.status.token) if minted.status is not None else ""

    with ThreadPoolExecutor(PROBE_TOKENS) as pool:
        return list(pool.map(mint, range(PROBE_TOKENS)))


def reset(
    host: Any, namespace: str, release: str, virtual_api: Any, baseline: Baseline, *, timeout: float = 60.0,
    tokens: list[str] | None = None,
) -> ResetReport:
    """Bring the virtual cluster ``release`` back to ``baseline`` (see the module's docstring); raises
    :class:`ResetError` when it is not clean within ``timeout`` seconds. ``tokens``: probe tokens minted
    before (:func:`mint_probe_tokens`), else it mints them first."""
    from kubernetes.client.exceptions import ApiException

    from .snapshot import EtcdView, etcd_of

    started = time.monotonic()
    deadline = started + timeout
    report = ResetReport()
    phases = report.phases
    lap = [started]

    def mark(phase: str) -> None:
        now = time.monotonic()
        phases[phase] = round(phases.get(phase, 0.0) + now - lap[0], 4)
        lap[0] = now

    core = host.core_v1()
    selector = f"{contract.LABEL_MANAGED_BY}={release}"
    keys = baseline.key_set()
    try:
        if not tokens:
            tokens = mint_probe_tokens(virtual_api)
            mark("probe-token")
        tokens = list(tokens)
        with etcd_of(host, namespace, release) as etcd:
            view = EtcdView(etcd)
            current = view.current()
            wanted = dict(baseline.keys)
            puts, deletes = reset_plan(wanted.items(), current, rotate=True)
            touched = touched_resources([*deletes, *(k for k, _ in puts if not SERVICE_ACCOUNTS.match(k))])
            claims = core.list_namespaced_persistent_volume_claim(namespace, label_selector=selector,
                                                                  _request_timeout=15).items
            volumes = sorted({c.spec.volume_name for c in claims if c.spec and c.spec.volume_name})
            mark("read")
            view.apply(_ordered(puts), deletes)
            report.written, report.deleted = len(puts), len(deletes)
            written = {k for k, _ in puts}
            mark("etcd-write")
            core.delete_collection_namespaced_pod(namespace, label_selector=selector, grace_period_seconds=0,
                                                  _request_timeout=15)
            if claims:
                core.delete_collection_namespaced_persistent_volume_claim(namespace, label_selector=selector,
                                                                          _request_timeout=15)
            mark("host-delete")
            webhooks = [kind for resource, kind in WEBHOOKS.items() if resource in touched]
            interval = 0.02
            while True:
                report.rounds += 1
                problems: list[str] = []
                current = view.refresh()
                puts, deletes = reset_plan(wanted.items(), current, rotate=False)
                # A baseline object the control plane rewrote after this reset wrote it back is its own state (a
                # controller settling a status): adopt it rather than fight it. Objects of the test, which the
                # reset deletes, and missing baseline objects are never adopted.
                for key in [k for k, _ in puts if k in written and k in current and not SERVICE_ACCOUNTS.match(k)]:
                    wanted[key] = report.adopted[key] = current[key]
                puts = [(k, v) for k, v in puts if k not in report.adopted]
                written.update(k for k, _ in puts)
                if puts or deletes:  # a controller acted on an event from before the reset: undo it again
                    view.apply(_ordered(puts), deletes)
                    problems.append(f"etcd: wrote back {_short(k for k, _ in puts) or 'nothing'}; "
                                    f"deleted {_short(deletes) or 'nothing'}")
                    report.repaired.append(problems[-1])
                    mark("etcd-repair")
                else:
                    objects = host_objects(core, namespace)
                    strangers = foreign(baseline, objects)
                    if strangers:
                        raise ResetError(
                            f"virtual cluster {release} cannot be reset: host namespace {namespace} holds "
                            f"{', '.join(strangers[:5])}, made neither by its chart nor by its syncer"
                        )
                    left = host_leftovers(baseline, objects, keys)
                    pods = [line.split(" ", 1)[1] for line in left if line.startswith("Pod ")]
                    for pod in pods:  # e.g. made by the syncer from an event it had queued before the reset
                        with _ignore_missing():
                            core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0, _request_timeout=10)
                    if left:
                        problems.append(f"host namespace {namespace} still holds {', '.join(left[:5])}")
                    for volume in volumes:
                        try:
                            core.read_persistent_volume(volume, _request_timeout=10)
                            problems.append(f"PersistentVolume {volume} of a claim of the test still exists")
                        except ApiException as exc:
                            if exc.status != 404:
                                raise
                    mark("host-check")
                    if not problems:
                        discovery = read_discovery(virtual_api)
                        if discovery != baseline.discovery:
                            extra = sorted(discovery - baseline.discovery)
                            missing = sorted(baseline.discovery - discovery)
                            problems.append(f"discovery differs: still serves {extra[:5]}, lacks {missing[:5]}")
                        elif not _token_refused(virtual_api, tokens[0]):
                            problems.append("a token minted before the reset is still accepted")
                            if len(tokens) > 1:  # that one is cached as accepted now: the next probe takes another
                                tokens.pop(0)
                        mark("api-check")
                    if not problems and webhooks:
                        for kind in webhooks:
                            prove_webhooks(virtual_api, kind, deadline)
                        webhooks = []
                        mark("webhook-proof")
                        continue  # the sentinels wrote to etcd: check it once more
                    if not problems:  # clean at the end of the round too: nothing acted while it was checked
                        late = reset_plan(wanted.items(), view.refresh(), rotate=False)
                        if late[0] or late[1]:
                            problems.append(f"etcd changed while it was checked: {_short(k for k, _ in late[0])}; "
                                            f"{_short(late[1])}")
                        mark("etcd-recheck")
                if not problems:
                    break
                if time.monotonic() >= deadline:
                    raise ResetError(
                        f"virtual cluster {release} was not fresh {timeout:.0f}s after its reset began: "
                        + "; ".join(problems)
                    )
                time.sleep(interval)
                interval = min(interval * 1.5, 0.25)
                mark("wait")
            # The history of the test's writes is of no use to anyone now: compact it away (kube-apiserver compacts
            # only every 5 minutes), so etcd's index does not grow with the resets. A watch behind it is told to
            # list again, as after any compaction.
            etcd.compact()
            mark("etcd-compact")
    except ResetError:
        raise
    except Exception as exc:  # noqa: BLE001 - API errors, the pod or its port-forward gone, etcd refusing...
        raise ResetError(f"resetting virtual cluster {release} in host namespace {namespace} failed: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    report.seconds = round(time.monotonic() - started, 4)
    return report


class _ignore_missing:
    """Ignore a 404 (the object is gone already)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        status = getattr(exc, "status", None)
        return exc is not None and status == 404
