"""The rules the plugin, the syncer and the chart share, each defined once (docs/architecture.md).

* The syncer imports this module (``vcluster_syncer.contract``).
* The plugin loads this very file: the pytest-vcluster wheel ships the syncer source under
  ``pytest_vcluster/_syncer/vcluster_syncer/``, a source checkout has it under ``syncer/``
  (``pytest_vcluster/_contract.py``). So this module imports the standard library only: no
  kubernetes, no pytest, nothing relative.
* The chart (``chart/``, YAML) cannot import it; ``tests/unit/test_contracts.py`` checks the
  rendered chart, the plugin and the syncer against what is written here.

Changing a value here renames things on every host that runs a cluster made by an older version
(host names, labels): a restarted syncer would no longer find its objects.
"""

from __future__ import annotations

import hashlib

# --------------------------------------------------------------------------- names

#: Longest release name R the chart accepts (pod ``R-0`` carries the label
#: ``controller-revision-hash=R-<10 chars>``, at most 63): the plugin never makes a longer one.
MAX_RELEASE_NAME = 52
#: Longest host name of a synced object, for every kind (see translate/names.py for why one limit).
NAME_LIMIT = 63
#: A longer host name keeps this many characters of ``<name>-x-<namespace>-x-<R>`` ...
HASH_PREFIX_LEN = 52
#: ... then ``-`` and this many hex characters of the sha256 of the whole of it.
HASH_LEN = 10


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_concat(full: str, limit: int = NAME_LIMIT) -> str:
    """``full`` if it fits ``limit``; else its first 52 characters, ``-`` and 10 hex of sha256(full).

    A prefix ending in ``.`` would give ``.-``, which no DNS name may contain: that becomes ``-``
    (so such a name is 62 characters long).
    """
    if len(full) <= limit:
        return full
    short = full[:HASH_PREFIX_LEN] + "-" + sha256_hex(full)[:HASH_LEN]
    return short.replace(".-", "-")


def host_name(name: str, namespace: str, release: str, limit: int = NAME_LIMIT) -> str:
    """Host name of virtual object ``namespace/name`` of virtual cluster (release) ``release``:
    ``<name>-x-<namespace>-x-<release>``, shortened by :func:`safe_concat`."""
    return safe_concat(f"{name}-x-{namespace}-x-{release}", limit)


# Objects of release R in its host namespace (chart/templates/_helpers.tpl).


def kubeconfig_secret_name(release: str) -> str:
    """Secret holding the virtual cluster's admin kubeconfig (keys below)."""
    return f"vc-{release}"


def workload_service_account(release: str) -> str:
    """Host ServiceAccount every synced pod runs as."""
    return f"vc-workload-{release}"


def control_plane_pod(release: str) -> str:
    """The pod of StatefulSet R: etcd, kube-apiserver, kube-controller-manager and the syncer."""
    return f"{release}-0"


# --------------------------------------------------------------------------- the kubeconfig Secret vc-R

#: kubeconfig of the admin, server :data:`KUBECONFIG_SERVER` (a placeholder: reach it by port-forward)
SECRET_KEY_CONFIG = "config"
#: the admin's bearer token
SECRET_KEY_TOKEN = "token"
#: the virtual API server's CA certificate (PEM)
SECRET_KEY_CA = "certificate-authority"
SECRET_KEYS = (SECRET_KEY_CONFIG, SECRET_KEY_TOKEN, SECRET_KEY_CA)

# --------------------------------------------------------------------------- ports

#: kube-apiserver in pod R-0 (HTTPS)
API_PORT = 6443
#: port ``https`` of Service R, to :data:`API_PORT`
SERVICE_PORT = 443
#: the syncer's /healthz and /readyz (HTTP)
HEALTH_PORT = 8081
#: the syncer's fake kubelet on KUBELET_ADDRESS (logs, exec, attach, port-forward of synced pods)
KUBELET_PORT = 10250
KUBELET_ADDRESS = "127.0.0.1"  # only the pod's own containers reach it
#: CoreDNS (container coredns of pod R-0, coredns.enabled), UDP and TCP; virtual Service kube-dns maps 53 to it
DNS_PORT = 1053
#: etcd's client port, on 127.0.0.1 inside pod R-0 only (the plugin reaches it by port-forward to snapshot
#: and fork a cluster)
ETCD_PORT = 2379
#: local port of the server written in Secret vc-R, and of the documented ``kubectl port-forward``
LOCAL_PORT = 8443
KUBECONFIG_SERVER = f"https://localhost:{LOCAL_PORT}"
#: the syncer reaches the virtual API server inside the pod
VIRTUAL_SERVER = f"https://127.0.0.1:{API_PORT}"

# --------------------------------------------------------------------------- labels and annotations

#: The syncer's domain (as vcluster's): user label keys in it are rewritten on the host.
SYNCER_DOMAIN = "vcluster.loft.sh"
LABEL_MANAGED_BY = f"{SYNCER_DOMAIN}/managed-by"  # = R, on every synced host object
LABEL_NAMESPACE = f"{SYNCER_DOMAIN}/namespace"  # = the virtual namespace
LABEL_FAKE_NODE = f"{SYNCER_DOMAIN}/fake-node"
ANNOTATION_OBJECT_NAME = f"{SYNCER_DOMAIN}/object-name"
ANNOTATION_OBJECT_NAMESPACE = f"{SYNCER_DOMAIN}/object-namespace"
ANNOTATION_OBJECT_UID = f"{SYNCER_DOMAIN}/object-uid"
ANNOTATION_OBJECT_KIND = f"{SYNCER_DOMAIN}/object-kind"

#: The chart's domain. Its cluster-scoped objects (ClusterRole/Binding vc-R-N, only for
#: sync.fromHost.nodes.mode=all or storageClasses) outlive namespace N: the plugin deletes them by
#: this label, whose value is N.
CLUSTER_SCOPED_LABEL = "vcluster.pytest-vcluster.io/host-namespace"

#: Condition the syncer sets (status True) on its own pod R-0 once the virtual cluster is first ready:
#: first sync done, default/default exists, DNS answers, the node of CoreDNS is shown
#: (vcluster_syncer/readiness.py). The plugin's VCluster.create returns on it, without waiting up to a
#: probe period for the kubelet's Ready.
CONDITION_CLUSTER_READY = "vcluster.pytest-vcluster.io/VirtualClusterReady"

#: The plugin's domain: labels and annotations of the host namespaces it creates (pytest_vcluster/_labels.py).
PLUGIN_DOMAIN = "pytest-vcluster.io"

#: Value of ``endpointslice.kubernetes.io/managed-by`` on the EndpointSlices the syncer writes: the virtual
#: ``default/kubernetes`` (apiendpoints.py) and the host copies of users' slices (translate/endpointslices.py).
#: Neither cluster's EndpointSlice or mirroring controller touches a slice managed by another (their values:
#: ``endpointslice-controller.k8s.io``, ``endpointslicemirroring-controller.k8s.io``).
ENDPOINTSLICE_MANAGED_BY = f"vcluster-syncer.{PLUGIN_DOMAIN}"
#: The EndpointSlice labels (discovery.k8s.io) the syncer writes on those slices and a reset reads on the host's:
#: the controller that manages a slice, and the Service it belongs to.
LABEL_SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_SLICE_SERVICE_NAME = "kubernetes.io/service-name"

# --------------------------------------------------------------------------- Pod Security

#: Chart value (top level of values.yaml) choosing the Pod Security Standard level of a cluster. The
#: chart hands it to the virtual API server's PodSecurity admission (an AdmissionConfiguration with
#: these defaults); the plugin reads it from the values it installs with and labels the host namespace.
VALUE_POD_SECURITY = "podSecurity"
#: The levels, loosest first (the names of the Pod Security Standards and of the PSA labels).
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
#: values.yaml's default: nothing is checked (no admission file, no namespace labels).
POD_SECURITY_DEFAULT = "privileged"
#: Version of the standards both walls check against: each API server's own newest.
POD_SECURITY_VERSION = "latest"
#: Pod Security Admission's namespace labels are ``<prefix>/<mode>`` and ``<prefix>/<mode>-version``.
POD_SECURITY_LABEL_PREFIX = "pod-security.kubernetes.io"
#: The modes both walls set to the chosen level: refuse (enforce), warn the client, annotate audit events.
POD_SECURITY_MODES = ("enforce", "warn", "audit")


def pod_security_settings(level: str) -> dict[str, str]:
    """``{mode: level, mode-version: latest}`` for every mode: the ``defaults`` of the virtual API
    server's PodSecurityConfiguration, and (under :data:`POD_SECURITY_LABEL_PREFIX`) the host namespace's
    labels. Empty for ``privileged``, which checks nothing."""
    if level == "privileged":
        return {}
    out: dict[str, str] = {}
    for mode in POD_SECURITY_MODES:
        out[mode] = level
        out[f"{mode}-version"] = POD_SECURITY_VERSION
    return out


# --------------------------------------------------------------------------- the syncer's environment

#: Set by the chart from the release and namespace, not from a value.
ENV_VCLUSTER_NAME = "VCLUSTER_NAME"  # R
ENV_HOST_NAMESPACE = "HOST_NAMESPACE"  # N (downward API)
#: the host node that runs pod R-0, and its IP (downward API): with CoreDNS (a container of R-0) the
#: virtual cluster shows that node from the start, as vcluster shows the node of its CoreDNS pod
ENV_NODE_NAME = "NODE_NAME"
ENV_HOST_IP = "HOST_IP"
ENV_VIRTUAL_SERVER = "VIRTUAL_SERVER"  # VIRTUAL_SERVER above
ENV_VIRTUAL_TOKEN_FILE = "VIRTUAL_TOKEN_FILE"
ENV_VIRTUAL_CA_FILE = "VIRTUAL_CA_FILE"
ENV_SERVICE_NAME = "SERVICE_NAME"  # R
ENV_WORKLOAD_SERVICE_ACCOUNT = "WORKLOAD_SERVICE_ACCOUNT"  # workload_service_account(R)
#: serving certificate and key (PEM) of the fake kubelet, made by the chart (Secret R-certs)
ENV_KUBELET_CERT_FILE = "KUBELET_CERT_FILE"
ENV_KUBELET_KEY_FILE = "KUBELET_KEY_FILE"
#: Set by the chart from values.
ENV_SYNC_ALL_CONFIGMAPS = "SYNC_ALL_CONFIGMAPS"
ENV_SYNC_ALL_SECRETS = "SYNC_ALL_SECRETS"
ENV_SYNC_NETWORK_POLICIES = "SYNC_NETWORK_POLICIES"
ENV_SYNC_NODES_MODE = "SYNC_NODES_MODE"
ENV_SYNC_STORAGE_CLASSES = "SYNC_STORAGE_CLASSES"
ENV_SYNC_EVENTS = "SYNC_EVENTS"
ENV_LOG_LEVEL = "LOG_LEVEL"
ENV_CLUSTER_DOMAIN = "CLUSTER_DOMAIN"
ENV_COREDNS_ENABLED = "COREDNS_ENABLED"
#: the syncer's own image (from syncer.image): it runs the helper init containers of host pods (/etc/hosts of
#: pods with a subdomain; a pod whose RuntimeClass the host lacks)
ENV_SYNCER_IMAGE = "SYNCER_IMAGE"
#: Read by the syncer with a default; the chart leaves them unset (its probes use HEALTH_PORT).
ENV_HEALTH_PORT = "HEALTH_PORT"
ENV_KUBELET_ADDRESS = "KUBELET_ADDRESS"
ENV_KUBELET_PORT = "KUBELET_PORT"

#: chart value (a leaf or a subtree of values.yaml) -> the variable the chart sets from it;
#: every switch under ``sync.*`` is here
CHART_VALUE_ENV: dict[str, str] = {
    "sync.toHost.configMaps.all": ENV_SYNC_ALL_CONFIGMAPS,
    "sync.toHost.secrets.all": ENV_SYNC_ALL_SECRETS,
    "sync.toHost.networkPolicies.enabled": ENV_SYNC_NETWORK_POLICIES,
    "sync.fromHost.nodes.mode": ENV_SYNC_NODES_MODE,
    "sync.fromHost.storageClasses.enabled": ENV_SYNC_STORAGE_CLASSES,
    "sync.fromHost.events.enabled": ENV_SYNC_EVENTS,
    "syncer.logLevel": ENV_LOG_LEVEL,
    "clusterDomain": ENV_CLUSTER_DOMAIN,
    "coredns.enabled": ENV_COREDNS_ENABLED,
    "syncer.image": ENV_SYNCER_IMAGE,
}
#: variables the chart sets from pod R-0's own fields (downward API ``fieldRef``): variable -> fieldPath
CHART_FIELD_ENV: dict[str, str] = {
    ENV_HOST_NAMESPACE: "metadata.namespace",
    ENV_NODE_NAME: "spec.nodeName",
    ENV_HOST_IP: "status.hostIP",
}
CHART_FIXED_ENV = frozenset({
    ENV_VCLUSTER_NAME, ENV_VIRTUAL_SERVER, ENV_VIRTUAL_TOKEN_FILE, ENV_VIRTUAL_CA_FILE,
    ENV_SERVICE_NAME, ENV_WORKLOAD_SERVICE_ACCOUNT, ENV_KUBELET_CERT_FILE, ENV_KUBELET_KEY_FILE,
}) | frozenset(CHART_FIELD_ENV)
#: every variable the chart sets
CHART_ENV = CHART_FIXED_ENV | frozenset(CHART_VALUE_ENV.values())
#: variables the syncer reads that the chart does not set, with the default the chart relies on
DEFAULTED_ENV: dict[str, str] = {
    ENV_HEALTH_PORT: str(HEALTH_PORT),
    ENV_KUBELET_ADDRESS: KUBELET_ADDRESS,
    ENV_KUBELET_PORT: str(KUBELET_PORT),
}
#: every variable the syncer reads
SYNCER_ENV = CHART_ENV | frozenset(DEFAULTED_ENV)
