"""The parts of the reconcile loop, one module per kind.

Virtual -> host (``base.VirtualToHost``, the generic reconcile): pods, services, endpoints, endpointslices,
configmaps, secrets, pvcs, networkpolicies. Host -> virtual: nodes, storageclasses, events.
"""

from __future__ import annotations

from ..translate.settings import TranslatorSettings
from .base import Part, VirtualToHost
from .configmaps import ConfigMaps
from .endpoints import Endpoints, KubernetesEndpoints
from .endpointslices import EndpointSlices
from .events import Events
from .networkpolicies import NetworkPolicies
from .nodes import Nodes
from .pods import Pods
from .pvcs import PersistentVolumeClaims
from .secrets import Secrets
from .services import Services
from .storageclasses import StorageClasses

__all__ = [
    "ConfigMaps", "EndpointSlices", "Endpoints", "Events", "KubernetesEndpoints", "NetworkPolicies", "Nodes", "Part",
    "PersistentVolumeClaims", "Pods", "Secrets", "Services", "StorageClasses", "VirtualToHost", "default_parts",
]


def default_parts(settings: TranslatorSettings) -> list[Part]:
    """The parts a syncer with these settings runs."""
    parts: list[Part] = [Services(), Endpoints(), EndpointSlices(), KubernetesEndpoints(), ConfigMaps(), Secrets(),
                         PersistentVolumeClaims(), Pods(), Nodes()]
    if settings.sync_events:
        parts.append(Events())
    if settings.sync_network_policies:
        parts.append(NetworkPolicies())
    if settings.sync_storage_classes:
        parts.append(StorageClasses())
    return parts
