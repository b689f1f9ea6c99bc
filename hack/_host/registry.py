"""The host's local image registry, and containerd's mirrors of the upstream registries onto it.

No upstream registry is reachable here.  hack/host runs CNCF distribution's ``registry`` (Debian's
docker-registry package) on 127.0.0.1:5001, the port of kind's local-registry guide, and points containerd's
CRI at it for docker.io, registry.k8s.io, k8s.gcr.io, gcr.io, quay.io, ghcr.io and localhost:5001
(``config_path`` with one ``hosts.toml`` per registry).  Unchanged manifests naming upstream images
(``busybox``, ``registry.k8s.io/e2e-test-images/agnhost:2.53``, ``imagePullPolicy: Always``) then pull
from it.  containerd asks the mirror for ``/v2/<repository>/...?ns=<registry>`` and distribution
ignores ``ns``: every upstream registry shares the registry's one namespace, so
``docker.io/library/busybox:1.36`` is stored as ``library/busybox:1.36`` (``repository_path``).

Its storage lives in the cache (pushed images survive down/up); it has no auth and allows deletes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from . import images, versions
from ._util import HostError, step
from .layout import REGISTRY_ADDRESS, REGISTRY_PORT, Layout

# CNCF distribution as Debian packages it (docker-registry, 2.8.2 in bookworm; hack/install-deps installs
# it): seconds to install, where building v3 from its Go module took about 6 minutes on a cold machine
# (its cloud storage drivers). The filesystem driver and the HTTP API are all the host uses.
BINARY = Path("/usr/bin/docker-registry")
# Registries whose pulls containerd sends to the local registry (and the local registry's own name,
# as users push to it: kind's guide says localhost:5001).
MIRRORED_REGISTRIES = (
    "docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "ghcr.io", f"localhost:{REGISTRY_PORT}",
)
DEFAULT_REGISTRY = "docker.io"


def binary() -> Path:
    """The registry's binary; a clear message when its package is missing."""
    if not BINARY.exists():
        raise HostError(f"{BINARY} is missing: apt-get install -y docker-registry (hack/install-deps does it)")
    return BINARY


def version() -> str:
    """What ``docker-registry --version`` says, e.g. ``2.8.2+ds1``."""
    out = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True, check=False).stdout.split()
    return out[-1] if out else "?"


# ---------------------------------------------------------------- names


def split_name(image: str) -> tuple[str, str, str]:
    """(registry, repository, tag or @digest) of an image reference, as Docker normalises it.

    The first component is a registry when it has a dot or a port or is ``localhost``; otherwise the
    image is on docker.io, where one-component names live under ``library/``.
    """
    if not image or image != image.strip() or " " in image:
        raise ValueError(f"not an image name: {image!r}")
    rest, digest = (image.split("@", 1) + [""])[:2]
    tag = ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DEFAULT_REGISTRY, rest
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if not repository or repository != repository.lower() or "//" in repository or repository.endswith("/"):
        raise ValueError(f"not an image name: {image!r}")
    if digest:
        ref = f"@{digest}"
    else:
        ref = f":{tag or 'latest'}"
    return registry, repository, ref


def repository_path(image: str) -> str:
    """Where the local registry keeps ``image``: its repository and tag without the registry.

    ``busybox`` -> ``library/busybox:latest``; ``registry.k8s.io/e2e-test-images/agnhost:2.53`` ->
    ``e2e-test-images/agnhost:2.53``; ``localhost:5001/my-app:dev`` -> ``my-app:dev``.
    """
    _registry, repository, ref = split_name(image)
    return repository + ref


def local_reference(image: str) -> str:
    """The name to `docker push` ``image`` under so that pulls of ``image`` find it."""
    return f"{REGISTRY_ADDRESS}/{repository_path(image)}"


# ---------------------------------------------------------------- configuration


def hosts_toml(registry: str, mirror: str = f"http://{REGISTRY_ADDRESS}") -> str:
    """containerd's certs.d/<registry>/hosts.toml: pulls and resolves of ``registry`` go to ``mirror`` alone.

    The mirror is the ``[host]`` tried first and the ``server`` too, so nothing falls back to the real
    registry: a name the local registry lacks fails at once with "not found", and a run never pulls from
    the network where there is one (CI), so it uses the same images everywhere.
    """
    return (
        f"# Written by hack/host: pulls from {registry} are served by the host's local registry only.\n"
        f'server = "{mirror}"\n'
        "\n"
        f'[host."{mirror}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )


def config_yaml(storage: Path, address: str = REGISTRY_ADDRESS) -> str:
    """distribution's configuration (JSON is YAML): filesystem storage, no auth, deletes allowed."""
    return json.dumps({
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}, "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
            # Pushes and pulls only; nothing here for the registry's maintenance jobs to do.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": address, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "health": {"storagedriver": {"enabled": False}},
    }, indent=2) + "\n"


def certs_d(layout: Layout) -> Path:
    return layout.config / "certs.d"


def config_file(layout: Layout) -> Path:
    return layout.config / "registry.yaml"


def storage(layout: Layout) -> Path:
    return layout.cache / "registry"


def write_configs(layout: Layout) -> None:
    """The registry's config and containerd's certs.d (read at each pull: no restart needed to change)."""
    storage(layout).mkdir(parents=True, exist_ok=True)
    config_file(layout).parent.mkdir(parents=True, exist_ok=True)
    config_file(layout).write_text(config_yaml(storage(layout)))
    for registry in MIRRORED_REGISTRIES:
        d = certs_d(layout) / registry
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(hosts_toml(registry))


def argv(layout: Layout) -> list[str]:
    return [str(binary()), "serve", str(config_file(layout))]


# ---------------------------------------------------------------- talking to it


def _get(path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
         timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://{REGISTRY_ADDRESS}{path}", method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def answers() -> bool:
    return _get("/v2/", timeout=2)[0] == 200


def catalog() -> list[str]:
    """Every repository in the registry (its catalog, page by page: at most 1000 a page)."""
    repositories: list[str] = []
    path = "/v2/_catalog?n=1000"
    while path:
        code, headers, body = _get(path)
        if code != 200:
            raise HostError(f"registry {path} answered {code}: {body[:300]!r}")
        repositories += json.loads(body).get("repositories") or []
        link = {k.lower(): v for k, v in headers.items()}.get("link", "")
        # Link: </v2/_catalog?last=x&n=1000>; rel="next"
        path = link[link.index("<") + 1:link.index(">")] if "<" in link and 'rel="next"' in link else ""
    return repositories


# ---------------------------------------------------------------- publishing


def _stamp(layout: Layout, upstream: str) -> Path:
    return layout.cache / "image-stamps" / "registry" / upstream.replace("/", "_").replace(":", "_")


def push(layout: Layout, pairs: list[tuple[str, str]], *, force: bool = False) -> list[str]:
    """Pushes each (upstream name, image in the host's docker) to the registry under the upstream name.

    Skips a pair whose docker image id is the one pushed last time (a stamp in the cache) while the
    registry still has the tag.  Returns the upstream names pushed.
    """
    pushed = []
    cached: set[str] | None = None  # the names the host's containerd holds, read once something is pushed
    locals_ = sorted({local for _upstream, local in pairs})
    # One docker call for all ids (a warm `up` checks every pair).
    ids = dict(zip(locals_, images.docker(layout, "image", "inspect", "--format", "{{.Id}}", *locals_,
                                          capture=True).split(), strict=True))
    for upstream, local in pairs:
        stamp = _stamp(layout, upstream)
        image_id = ids[local]
        if not force and stamp.exists() and stamp.read_text() == image_id and has_tag(upstream):
            continue
        target = local_reference(upstream)
        with step(f"push {upstream} ({local})"):
            images.docker(layout, "tag", local, target)
            images.docker(layout, "push", "--quiet", target)
            # The tag only served the push; the image stays under its own name.
            if target != local:
                images.docker(layout, "rmi", "--no-prune", target)
            # A node keeps what it pulled under the name: forget it, or pods (IfNotPresent) would run the
            # image pushed before this one. An image built under its upstream name (the control plane's,
            # CoreDNS) was imported under that name just now: that copy is this image, and the host's own
            # pods run it with imagePullPolicy Never, so it stays.
            if upstream != local:
                if cached is None:
                    cached = images.containerd_images(layout)
                if upstream in cached:
                    images.ctr(layout, "images", "rm", upstream)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(image_id)
        pushed.append(upstream)
    return pushed


def _manifest_url(image: str) -> str:
    _registry, repository, ref = split_name(image)
    return f"/v2/{repository}/manifests/{ref[1:]}"


def has_tag(image: str) -> bool:
    accept = ", ".join([
        "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ])
    return _get(_manifest_url(image), method="HEAD", headers={"Accept": accept})[0] == 200


def delete(image: str) -> bool:
    """Deletes the manifest ``image`` names from the registry (its blobs stay until a garbage collection)."""
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    code, headers, _ = _get(_manifest_url(image), method="HEAD", headers={"Accept": accept})
    if code != 200:
        return False
    digest = {k.lower(): v for k, v in headers.items()}.get("docker-content-digest", "")
    _registry, repository, _ref = split_name(image)
    return _get(f"/v2/{repository}/manifests/{digest}", method="DELETE")[0] == 202


def remove_repository(layout: Layout, image: str) -> None:
    """Deletes ``image``'s tag through the API, then its repository's folder (the API empties a repository
    but keeps it listed in the catalog).  Blobs stay until a garbage collection."""
    delete(image)
    _registry, repository, _ref = split_name(image)
    folder = storage(layout) / "docker" / "registry" / "v2" / "repositories" / repository
    if folder.is_dir():
        shutil.rmtree(folder)


def publish_mirrored(layout: Layout) -> list[str]:
    """Pushes versions.MIRRORED_IMAGES (those changed since the last push)."""
    pairs = sorted(versions.MIRRORED_IMAGES.items())
    if not pairs:
        return []
    return push(layout, pairs)


def push_own(layout: Layout, names: list[str]) -> list[str]:
    """`hack/host push-image`: pushes images of the host's docker to the registry under their own names.

    Returns, for each, the name a pod pulls it by: the name itself when its registry is mirrored
    (``my-app:dev``, ``localhost:5001/my-app:dev``, ``quay.io/me/app:1``), else the registry's own name
    (``localhost:5001/<repository>``).
    """
    out = []
    for name in names:
        push(layout, [(name, name)], force=True)
        registry, _repository, _ref = split_name(name)
        out.append(name if registry in MIRRORED_REGISTRIES else f"localhost:{REGISTRY_PORT}/{repository_path(name)}")
    return out
