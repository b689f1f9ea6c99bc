"""Shared by the example suites: the images their workloads run, made available on the host's nodes.

A virtual cluster's pods run on the host, so an image a test builds locally must reach the host's
nodes first: ``vcluster_host.load_image(name)`` does ``kind load docker-image`` on a kind host, and
runs the ``--vcluster-image-loader`` command on a host given by kubeconfig. The workloads then use
``imagePullPolicy: Never`` (or ``IfNotPresent``) so nothing is pulled.
"""

from __future__ import annotations

import pytest

from pytest_vcluster import Host

#: images the examples' workloads run; they are in the local docker (built by hack/host up)
EXAMPLE_IMAGES = (
    "pytest-vcluster.local/busybox:1.35",
    "pytest-vcluster.local/httpd:1.35",
    "pytest-vcluster.local/python:3.11-bookworm",
)


@pytest.fixture(scope="session", autouse=True)
def example_images(vcluster_host: Host) -> None:
    """Load the examples' images into the host's nodes once per session (per xdist worker)."""
    for image in EXAMPLE_IMAGES:
        vcluster_host.load_image(image)
