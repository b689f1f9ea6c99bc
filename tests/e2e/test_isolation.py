"""Tenant isolation on the real host (`hack/host up`): what a virtual cluster user can reach on the host.

1. Credentials: a pod in virtual cluster A tries every credential it can see (its mounted service account
   token, a token Secret it mounts, environment variables, files under /var/run/secrets) against cluster B's
   API server (B's host Service), the host's API server (its `kubernetes` Service and the node address behind
   it) and the host API server behind a virtual selector-less Service: each answers 401. The same tokens
   against A's own API server are accepted (403, not 401): the probe works and the tokens are real. The host
   pod runs as `vc-workload-R` without a host token, whatever account the virtual pod names.
2. The syncer's host rights: exactly the chart's Role in its own namespace (plus a ClusterRole reading nodes
   when node sync is `all`), checked on the host objects and with SubjectAccessReviews.
3. Every synced kind that could name a host object outside the namespace is refused or translated: PVC
   `volumeName` and ephemeral volume templates, ExternalName Services, Endpoints at the host API server,
   `nodeName`, virtual `kube-system`/`default`, host accounts, service-account-token Secrets, imagePullSecrets,
   volume plugins' secretRef.
   What the default values copy as they are (hostPath, hostNetwork, hostPID, privileged) is asserted too.

Clusters: `a` (default values) and `b` (`sync.fromHost.nodes.mode=all`), module-scoped, made with
`VCluster.create`, labelled `e2e=isolation`, deleted at the end. Host PersistentVolumes made here are deleted at
the end too. Images are the ones the host built (`hack/host images`): nothing is pulled.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_vcluster import Host, VCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import Sides, created_vcluster, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

LABELS = {"e2e": "isolation"}
CREATE_TIMEOUT = 360.0
SHELL = versions.SHELL_IMAGE
PYTHON = versions.PYTHON_IMAGE
ALL = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
READ = ["get", "list", "watch"]
#: chart/templates/rbac.yaml, rule by rule: (apiGroups, resources, verbs)
SYNCER_ROLE_RULES = [
    ([""], ["pods", "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims"], ALL),
    (["networking.k8s.io"], ["networkpolicies"], ALL),
    (["discovery.k8s.io"], ["endpointslices"], ["get", "list", "watch", "create", "update", "patch", "delete"]),
    ([""], ["pods/status", "pods/ephemeralcontainers"], ["get", "update", "patch"]),
    ([""], ["pods/log"], READ),
    ([""], ["pods/exec", "pods/portforward", "pods/attach"], ["get", "create"]),
    ([""], ["events"], READ),
]

# Runs in the virtual pod: every credential it can see, against every API server address it is given.
PROBE = r"""
import json, os, ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
creds = {}
for top in ("/var/run/secrets", "/creds"):
    for root, _, files in os.walk(top):
        for f in files:
            path = os.path.join(root, f)
            try:
                value = open(path).read().strip()
            except OSError:
                continue
            if value.startswith("eyJ") and value not in creds.values():
                creds["file:" + path] = value
for key, value in sorted(os.environ.items()):
    if value.strip().startswith("eyJ"):
        creds["env:" + key] = value.strip()
targets = json.loads(sys.argv[1])
targets["self"] = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
results = {}
for target, url in sorted(targets.items()):
    for name, token in sorted(creds.items()):
        req = urllib.request.Request(url + "/api/v1/namespaces", headers={"Authorization": "Bearer " + token})
        try:
            code = urllib.request.urlopen(req, context=ctx, timeout=15).status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception as e:
            code = "%s: %s" % (type(e).__name__, e)
        results["%s %s" % (target, name)] = code
print("RESULT " + json.dumps({"creds": sorted(creds), "results": results}))
"""


class Env(Sides):
    def __init__(self, vc: VCluster, host_api: client.ApiClient) -> None:
        super().__init__(vc, host_api)
        self.syncer_account = f"vc-{self.release}"
        self.workload_account = f"vc-workload-{self.release}"
        self.hauthz = client.AuthorizationV1Api(host_api)

    def host_pod(self, ns: str, name: str) -> client.V1Pod:
        hname = self.vc.host_name("Pod", name, ns)
        return wait(f"host copy of pod {ns}/{name}", lambda: self.hcore.read_namespaced_pod(hname, self.hns),
                    timeout=120, diagnose=self.diagnose(ns))

    def can(self, verb: str, resource: str, namespace: str | None = None, group: str = "") -> bool:
        """SubjectAccessReview on the host for the syncer's ServiceAccount."""
        review = self.hauthz.create_subject_access_review(client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{self.hns}:{self.syncer_account}",
                groups=["system:serviceaccounts", f"system:serviceaccounts:{self.hns}", "system:authenticated"],
                resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group,
                                                                namespace=namespace))))
        return bool(review.status.allowed)

    def bindings_of_syncer(self) -> list[str]:
        """Every RoleBinding/ClusterRoleBinding on the host naming the syncer's ServiceAccount."""
        def names(subjects: list[client.RbacV1Subject] | None) -> bool:
            return any(s.kind == "ServiceAccount" and s.name == self.syncer_account and s.namespace == self.hns
                       for s in subjects or [])
        out = [f"RoleBinding {b.metadata.namespace}/{b.metadata.name} -> {b.role_ref.kind} {b.role_ref.name}"
               for b in self.hrbac.list_role_binding_for_all_namespaces().items if names(b.subjects)]
        out += [f"ClusterRoleBinding {b.metadata.name} -> {b.role_ref.kind} {b.role_ref.name}"
                for b in self.hrbac.list_cluster_role_binding().items if names(b.subjects)]
        return sorted(out)

    def release_cluster_roles(self) -> list[client.V1ClusterRole]:
        return [r for r in self.hrbac.list_cluster_role().items
                if r.metadata.name.startswith(f"vc-{self.release}-")
                or self.release in (r.metadata.labels or {}).values()]


def container(image: str, command: list[str] | None = None, **kw: Any) -> client.V1Container:
    return client.V1Container(name="main", image=image, image_pull_policy="Never", command=command, **kw)


def pod(name: str, *containers: client.V1Container, restart_policy: str = "Always", **spec: Any) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
                        spec=client.V1PodSpec(containers=list(containers), restart_policy=restart_policy,
                                              termination_grace_period_seconds=1, **spec))


def sleeper(name: str, **spec: Any) -> client.V1Pod:
    return pod(name, container(SHELL, ["sleep", "3600"]), **spec)


def rules(role: client.V1Role | client.V1ClusterRole) -> list[tuple[list[str], list[str], list[str]]]:
    return [(r.api_groups, r.resources, r.verbs) for r in role.rules or []]


def host_token_mounts(hpod: client.V1Pod) -> list[str]:
    """Volumes of a host pod through which the host would mount a host service account token."""
    out = []
    for volume in hpod.spec.volumes or []:
        for source in (volume.projected.sources or []) if volume.projected else []:
            if source.service_account_token:
                out.append(volume.name)
    return out


@pytest.fixture(scope="module")
def a(host: Host) -> Iterator[Env]:
    """Default values."""
    with created_vcluster(host, f"e2e-iso-a-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT) as vc:
        yield Env(vc, host.api_client)


@pytest.fixture(scope="module")
def b(host: Host) -> Iterator[Env]:
    """Node sync `all`: the one option that gives the syncer a ClusterRole (reading nodes)."""
    with created_vcluster(host, f"e2e-iso-b-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT,
                          set={"sync.fromHost.nodes.mode": "all"}) as vc:
        yield Env(vc, host.api_client)


# ---------------------------------------------------------------------------------------------- 1. credentials


def test_no_credential_in_a_pod_authenticates_to_another_cluster_or_the_host(a: Env, b: Env) -> None:
    ns = a.namespace("probe")
    # the host API server: its `kubernetes` Service and the address behind it (the node's)
    host_svc = a.hcore.read_namespaced_service("kubernetes", "default")
    host_ep = a.hcore.read_namespaced_endpoints("kubernetes", "default").subsets[0]
    host_ip, host_port = host_ep.addresses[0].ip, host_ep.ports[0].port
    b_svc = b.hcore.read_namespaced_service(b.release, b.hns)

    # a selector-less virtual Service whose Endpoints point at the host API server
    a.vcore.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="hostapi"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="https", port=443, target_port=host_port)])))
    a.vcore.create_namespaced_endpoints(ns, client.V1Endpoints(
        metadata=client.V1ObjectMeta(name="hostapi"),
        subsets=[client.V1EndpointSubset(addresses=[client.V1EndpointAddress(ip=host_ip)],
                                         ports=[client.CoreV1EndpointPort(name="https", port=host_port)])]))
    hname = a.vc.host_name("Service", "hostapi", ns)
    hep = wait("host copy of the Endpoints at the host API server",
               lambda: a.hcore.read_namespaced_endpoints(hname, a.hns), timeout=60, diagnose=a.diagnose(ns))
    assert [x.ip for x in hep.subsets[0].addresses] == [host_ip]  # copied: the host routes there at most
    hostapi_ip = wait("the virtual Service with the host's ClusterIP",
                      lambda: (lambda v, h: v if v == h else None)(
                          a.vcore.read_namespaced_service("hostapi", ns).spec.cluster_ip,
                          a.hcore.read_namespaced_service(hname, a.hns).spec.cluster_ip), timeout=60)

    # a virtual account named like the syncer's host account, a token Secret of the virtual `default` account
    # (also the name of a host account), a pull secret named like the host's kubeconfig Secret vc-R
    a.vcore.create_namespaced_service_account(ns, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name=a.syncer_account)))
    a.vcore.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="sa-token", annotations={"kubernetes.io/service-account.name": "default"}),
        type="kubernetes.io/service-account-token"))
    vtoken = wait("the virtual token controller to fill sa-token",
                  lambda: (a.vcore.read_namespaced_secret("sa-token", ns).data or {}).get("token"), timeout=60)
    kubeconfig_secret = a.hcore.read_namespaced_secret(a.syncer_account, a.hns)  # vc-R: same name
    a.vcore.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name=a.syncer_account), type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": '{"auths": {}}'}))

    targets = {
        "cluster-b": f"https://{b_svc.spec.cluster_ip}:443",
        "host-service": f"https://{host_svc.spec.cluster_ip}:443",
        "host-node": f"https://{host_ip}:{host_port}",
        "host-via-virtual-service": f"https://{hostapi_ip}:443",
    }
    probe = pod(
        "probe",
        container(PYTHON, ["python3", "-c", PROBE, json.dumps(targets)],
                  env=[client.V1EnvVar(name="TOKEN_FROM_SECRET", value_from=client.V1EnvVarSource(
                      secret_key_ref=client.V1SecretKeySelector(name="sa-token", key="token")))],
                  volume_mounts=[client.V1VolumeMount(name="sa-token", mount_path="/creds/sa-token")]),
        restart_policy="Never", service_account_name=a.syncer_account,
        image_pull_secrets=[client.V1LocalObjectReference(name=a.syncer_account)],
        volumes=[client.V1Volume(name="sa-token", secret=client.V1SecretVolumeSource(secret_name="sa-token"))])
    out = a.run_to_completion(ns, probe)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    assert line, out
    found = json.loads(line[len("RESULT "):])
    print(json.dumps(found, indent=1))
    creds, results = found["creds"], found["results"]
    # what the pod can see: its own token (projected), the token Secret as a file and as an env variable
    assert "env:TOKEN_FROM_SECRET" in creds and "file:/var/run/secrets/kubernetes.io/serviceaccount/token" in creds
    assert any(c.startswith("file:/creds/sa-token/") for c in creds), creds
    for cred in creds:
        # control: A's own API server knows these tokens (authenticated; the accounts have no rights)
        assert results[f"self {cred}"] in (200, 403), (cred, results)
        for target in targets:
            assert results[f"{target} {cred}"] == 401, (target, cred, results)

    # the host pod: the workload account, no host token, whatever the virtual pod named
    hpod = a.host_pod(ns, "probe")
    assert hpod.spec.service_account_name == a.workload_account
    assert hpod.spec.automount_service_account_token is False
    assert host_token_mounts(hpod) == []
    # imagePullSecrets: the host copy of the virtual Secret, never the host's kubeconfig Secret of that name
    pull_host_name = a.vc.host_name("Secret", a.syncer_account, ns)
    assert [s.name for s in hpod.spec.image_pull_secrets] == [pull_host_name]
    assert a.hcore.read_namespaced_secret(pull_host_name, a.hns).type == "kubernetes.io/dockerconfigjson"
    after = a.hcore.read_namespaced_secret(a.syncer_account, a.hns)
    assert after.metadata.resource_version == kubeconfig_secret.metadata.resource_version
    # the service-account-token Secret: its host copy is Opaque (the host's token controller ignores it) and
    # holds the virtual token only
    hsecret = a.hcore.read_namespaced_secret(a.vc.host_name("Secret", "sa-token", ns), a.hns)
    assert hsecret.type == "Opaque"
    assert hsecret.data["token"] == vtoken
    assert hsecret.data == a.vcore.read_namespaced_secret("sa-token", ns).data


@pytest.mark.parametrize("vns", ["default", "kube-system"])
def test_pods_naming_host_accounts_in_system_namespaces_run_as_the_workload_account(a: Env, vns: str) -> None:
    name = f"acct-{suffix()}"
    account = "default"
    if vns == "kube-system":
        # the syncer's host account name, made in the virtual cluster
        account = a.syncer_account
        if not [s for s in a.vcore.list_namespaced_service_account(vns).items if s.metadata.name == account]:
            a.vcore.create_namespaced_service_account(vns, client.V1ServiceAccount(
                metadata=client.V1ObjectMeta(name=account)))
    a.vcore.create_namespaced_pod(vns, sleeper(name, service_account_name=account))
    hpod = a.host_pod(vns, name)
    assert hpod.metadata.name == f"{name}-x-{vns}-x-{a.release}" and hpod.metadata.namespace == a.hns
    assert hpod.spec.service_account_name == a.workload_account
    assert hpod.spec.automount_service_account_token is False
    assert host_token_mounts(hpod) == []
    a.vcore.delete_namespaced_pod(name, vns, grace_period_seconds=0)


# ---------------------------------------------------------------------------------------------- 2. syncer's rights


def test_syncer_rights_are_its_role_with_default_values(a: Env) -> None:
    role = a.hrbac.read_namespaced_role(a.syncer_account, a.hns)
    assert rules(role) == [(list(g), list(r), list(v)) for g, r, v in SYNCER_ROLE_RULES]
    binding = a.hrbac.read_namespaced_role_binding(a.syncer_account, a.hns)
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", a.syncer_account)
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [
        ("ServiceAccount", a.syncer_account, a.hns)]
    assert a.bindings_of_syncer() == [f"RoleBinding {a.hns}/{a.syncer_account} -> Role {a.syncer_account}"]
    assert a.release_cluster_roles() == []
    assert not [b.metadata.name for b in a.hrbac.list_cluster_role_binding().items
                if b.metadata.name.startswith(f"vc-{a.release}-")]

    # the host's authorizer agrees: rights in N, none elsewhere
    assert a.can("get", "secrets", a.hns) and a.can("create", "pods", a.hns)  # control: the review works
    assert not a.can("get", "secrets", "kube-system")
    assert not a.can("get", "secrets", "default")
    assert not a.can("list", "secrets")  # all namespaces
    assert not a.can("list", "namespaces")
    assert not a.can("list", "nodes")
    assert not a.can("create", "pods", "default")
    assert not a.can("create", "serviceaccounts/token", a.hns)
    assert not a.can("create", "rolebindings", a.hns, group="rbac.authorization.k8s.io")
    assert not a.can("list", "persistentvolumes")


def test_node_sync_adds_only_a_cluster_role_reading_nodes(b: Env) -> None:
    roles = b.release_cluster_roles()
    assert [r.metadata.name for r in roles] == [f"vc-{b.release}-{b.hns}"]
    assert rules(roles[0]) == [([""], ["nodes"], READ)]
    assert b.bindings_of_syncer() == sorted([
        f"RoleBinding {b.hns}/{b.syncer_account} -> Role {b.syncer_account}",
        f"ClusterRoleBinding vc-{b.release}-{b.hns} -> ClusterRole vc-{b.release}-{b.hns}"])
    assert rules(b.hrbac.read_namespaced_role(b.syncer_account, b.hns)) == [
        (list(g), list(r), list(v)) for g, r, v in SYNCER_ROLE_RULES]
    assert b.can("list", "nodes") and b.can("get", "nodes")
    assert not b.can("update", "nodes") and not b.can("delete", "nodes")
    assert not b.can("list", "namespaces")
    assert not b.can("get", "secrets", "kube-system")


# ---------------------------------------------------------------------------------------------- 3. synced kinds


@pytest.fixture
def host_pvs(a: Env) -> Iterator[tuple[str, list[str], str]]:
    """A class name and host PersistentVolumes of it: two small decoys and a large target (deleted after)."""
    cls = f"iso-{suffix()}"
    made = []

    def pv(name: str, size: str) -> None:
        a.hcore.create_persistent_volume(client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=name, labels=LABELS),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": size}, access_modes=["ReadWriteOnce"], storage_class_name=cls,
                persistent_volume_reclaim_policy="Retain",
                host_path=client.V1HostPathVolumeSource(path=f"/tmp/{name}", type="DirectoryOrCreate"))))
        made.append(name)

    try:
        for i in range(2):
            pv(f"{cls}-decoy{i}", "1Gi")
        pv(f"{cls}-target", "5Gi")
        yield cls, made[:2], made[2]
    finally:
        for name in made:
            try:
                a.hcore.delete_persistent_volume(name)
            except client.ApiException as e:
                if e.status != 404:
                    raise


def test_claims_never_bind_a_host_volume_by_name(a: Env, host_pvs: tuple[str, list[str], str]) -> None:
    """A claim and a generic ephemeral volume naming a host PersistentVolume in volumeName: the host copies
    have no volumeName, so the host binds them by matching (the smallest fitting volume: a decoy), never to
    the named one."""
    cls, decoys, target = host_pvs
    ns = a.namespace("pvc")
    spec = client.V1PersistentVolumeClaimSpec(
        access_modes=["ReadWriteOnce"], storage_class_name=cls, volume_name=target,
        resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}))
    a.vcore.create_namespaced_persistent_volume_claim(ns, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="claim"), spec=spec))
    a.vcore.create_namespaced_pod(ns, pod(
        "eph", container(SHELL, ["sleep", "3600"], volume_mounts=[client.V1VolumeMount(name="scratch",
                                                                                        mount_path="/s")]),
        volumes=[client.V1Volume(name="scratch", ephemeral=client.V1EphemeralVolumeSource(
            volume_claim_template=client.V1PersistentVolumeClaimTemplate(spec=spec)))]))

    hpod = a.host_pod(ns, "eph")
    eph_claim = a.vc.host_name("PersistentVolumeClaim", "eph-scratch", ns)
    assert [(v.name, v.ephemeral, v.persistent_volume_claim.claim_name) for v in hpod.spec.volumes
            if v.name == "scratch"] == [("scratch", None, eph_claim)]
    for hclaim in (a.vc.host_name("PersistentVolumeClaim", "claim", ns), eph_claim):
        bound = wait(f"host claim {hclaim} bound",
                     lambda h=hclaim: (lambda c: c if c.status.phase == "Bound" else None)(
                         a.hcore.read_namespaced_persistent_volume_claim(h, a.hns)),
                     timeout=120, diagnose=a.diagnose(ns))
        print(f"host claim {hclaim} bound to {bound.spec.volume_name}")
        assert bound.spec.volume_name in decoys
    target_pv = a.hcore.read_persistent_volume(target)
    assert target_pv.status.phase == "Available" and target_pv.spec.claim_ref is None
    # no host claim anywhere names the target (the host's ephemeral controller made none from the template)
    assert not [c.metadata.name for c in a.hcore.list_persistent_volume_claim_for_all_namespaces().items
                if c.spec.volume_name == target]


def test_external_name_service_stays_a_cname_in_the_host_namespace(a: Env) -> None:
    ns = a.namespace("ext")
    a.vcore.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="ext"),
        spec=client.V1ServiceSpec(type="ExternalName", external_name="kubernetes.default.svc.cluster.local")))
    hname = a.vc.host_name("Service", "ext", ns)
    hsvc = wait("host copy of the ExternalName Service", lambda: a.hcore.read_namespaced_service(hname, a.hns),
                timeout=60, diagnose=a.diagnose(ns))
    assert (hsvc.spec.type, hsvc.spec.external_name) == ("ExternalName", "kubernetes.default.svc.cluster.local")
    assert [(s.metadata.namespace, s.metadata.name) for s in
            a.hcore.list_service_for_all_namespaces(field_selector=f"metadata.name={hname}").items] == [
        (a.hns, hname)]


def test_node_name_is_dropped_unless_a_known_host_node(a: Env, b: Env) -> None:
    node = a.hcore.list_node().items[0].metadata.name
    # A (no host node list): an unknown name is dropped, the host scheduler places the pod
    ns = a.namespace("pin")
    a.vcore.create_namespaced_pod(ns, sleeper("unknown", node_name="no-such-node"))
    placed = wait("the host scheduler to place the host pod", lambda: a.host_pod(ns, "unknown").spec.node_name,
                  timeout=120, diagnose=a.diagnose(ns))
    assert placed == node
    # ... and a fake node (the host node of that name, where A's pods run) is kept
    wait(f"fake node {node} in A", lambda: a.vcore.read_node(node), timeout=120)
    a.vcore.create_namespaced_pod(ns, sleeper("fake", node_name=node))
    assert a.host_pod(ns, "fake").spec.node_name == node
    # B (host nodes synced): a host node the syncer sees is kept
    ns = b.namespace("pin")
    wait(f"virtual node {node} in B", lambda: b.vcore.read_node(node), timeout=120)
    b.vcore.create_namespaced_pod(ns, sleeper("known", node_name=node))
    assert b.host_pod(ns, "known").spec.node_name == node


def test_volume_plugin_secret_refs_name_virtual_secrets(a: Env) -> None:
    """A flexVolume naming Secret vc-R (the host's kubeconfig Secret has that name in N): the host pod names
    the host copy of the virtual Secret vc-R instead."""
    ns = a.namespace("flex")
    a.vcore.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name=a.syncer_account),
                                                         string_data={"k": "v"}))
    a.vcore.create_namespaced_pod(ns, pod(
        "flex", container(SHELL, ["sleep", "3600"], volume_mounts=[client.V1VolumeMount(name="f", mount_path="/f")]),
        volumes=[client.V1Volume(name="f", flex_volume=client.V1FlexVolumeSource(
            driver="example.com/none", secret_ref=client.V1LocalObjectReference(name=a.syncer_account)))]))
    hpod = a.host_pod(ns, "flex")
    hsecret = a.vc.host_name("Secret", a.syncer_account, ns)
    assert [v.flex_volume.secret_ref.name for v in hpod.spec.volumes if v.flex_volume] == [hsecret]
    assert a.hcore.read_namespaced_secret(hsecret, a.hns).data == {"k": "dg=="}  # the virtual Secret, synced
    a.vcore.delete_namespaced_pod("flex", ns, grace_period_seconds=0)


def test_default_values_copy_host_access_as_is(a: Env) -> None:
    """hostPath, hostNetwork, hostPID and privileged: the default copies them (as vcluster does); the host
    admits them (the host pod exists). A `podSecurity` chart value is what refuses them."""
    ns = a.namespace("hostly")
    a.vcore.create_namespaced_pod(ns, pod(
        "hostly",
        container(SHELL, ["sleep", "3600"], security_context=client.V1SecurityContext(privileged=True),
                  volume_mounts=[client.V1VolumeMount(name="node-tmp", mount_path="/node-tmp", read_only=True)]),
        host_network=True, host_pid=True,
        volumes=[client.V1Volume(name="node-tmp", host_path=client.V1HostPathVolumeSource(path="/tmp"))]))
    hpod = a.host_pod(ns, "hostly")
    assert hpod.spec.host_network is True and hpod.spec.host_pid is True
    assert hpod.spec.containers[0].security_context.privileged is True
    assert [v.host_path.path for v in hpod.spec.volumes if v.host_path] == ["/tmp"]
    a.vcore.delete_namespaced_pod("hostly", ns, grace_period_seconds=0)
