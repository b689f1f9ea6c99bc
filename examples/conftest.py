"""Shared by the example suites: the images their workloads run, on the host's nodes.

The workloads name upstream images (``busybox:1.36``, ``nginx:1.25``) with ``imagePullPolicy: IfNotPresent``,
as in any cluster: a node that can reach the registry pulls them. An image the local docker already holds is
loaded into the host's nodes first with ``vcluster_host.load_image(name)`` (``kind load docker-image`` on a kind
host, the ``--vcluster-image-loader`` command on a host given by kubeconfig), so the examples also run where the
nodes cannot pull (a kind cluster without network).

The pods that run Python (operator_crd's in-cluster check, fork_operator's controller) use the image the plugin
builds its syncer image from (``VCLUSTER_SYNCER_BASE_IMAGE``, default ``python:3.11-slim-bookworm``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pytest_vcluster import Host

BUSYBOX_IMAGE = "busybox:1.36"
NGINX_IMAGE = "nginx:1.25"
#: the Python image of the examples' Python pods: the syncer's base image (the plugin's default, or the one named)
PYTHON_IMAGE = os.environ.get("VCLUSTER_SYNCER_BASE_IMAGE") or "python:3.11-slim-bookworm"
EXAMPLE_IMAGES = (BUSYBOX_IMAGE, NGINX_IMAGE, PYTHON_IMAGE)


def in_local_docker(image: str) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    proc = subprocess.run([docker, "image", "inspect", image], capture_output=True, timeout=60)
    return proc.returncode == 0


@pytest.fixture(scope="session", autouse=True)
def example_images(vcluster_host: Host) -> None:
    """Load the examples' images that the local docker holds into the host's nodes, once per session (per xdist
    worker); the others are pulled by the nodes. A host given by kubeconfig without an image loader pulls all."""
    if vcluster_host.provider != "kind" and not vcluster_host.image_loader:
        return
    for image in EXAMPLE_IMAGES:
        if in_local_docker(image):
            vcluster_host.load_image(image)
