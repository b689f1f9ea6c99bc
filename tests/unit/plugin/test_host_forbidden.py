"""A host 403 becomes one message naming the verb, the resource and the rule to add (pure parsing)."""

from __future__ import annotations

import pytest

from pytest_vcluster import HostForbiddenError
from pytest_vcluster.core.errors import forbidden

SA = "system:serviceaccount:ci:pytest-vcluster"


@pytest.mark.parametrize(("text", "message"), [
    (f'{{"kind":"Status","message":"namespaces is forbidden: User \\"{SA}\\" cannot create resource \\"namespaces\\" '
     f'in API group \\"\\" at the cluster scope","reason":"Forbidden","code":403}}',
     f"cannot create host namespace vc-1: the host refused {SA} the right to create namespaces. Add this rule to "
     "the ClusterRole bound to it (docs/host-rbac.yaml lists every right the plugin needs): - apiGroups: [\"\"], "
     "resources: [\"namespaces\"], verbs: [\"create\"]"),
    (f'Error: INSTALLATION FAILED: statefulsets.apps is forbidden: User "{SA}" cannot create resource '
     '"statefulsets" in API group "apps" in the namespace "vc-1"',
     f"cannot create host namespace vc-1: the host refused {SA} the right to create statefulsets (API group apps) "
     "in namespace vc-1. Add this rule to the ClusterRole bound to it (docs/host-rbac.yaml lists every right the "
     "plugin needs): - apiGroups: [\"apps\"], resources: [\"statefulsets\"], verbs: [\"create\"]"),
])
def test_a_refusal_names_the_rule_to_add(text: str, message: str) -> None:
    error = forbidden(text, "cannot create host namespace vc-1")
    assert isinstance(error, HostForbiddenError)
    assert str(error) == message


def test_the_subresource_and_the_user_are_kept() -> None:
    error = forbidden(f'pods "vc-1-0" is forbidden: User "{SA}" cannot create resource "pods/portforward" in API '
                      'group "" in the namespace "vc-1"', "port-forward")
    assert error is not None
    assert (error.verb, error.resource, error.group, error.user) == ("create", "pods/portforward", "", SA)


@pytest.mark.parametrize("text", ["", "HTTP 500 Internal Server Error", '{"reason":"Forbidden","code":403}'])
def test_other_errors_are_not_taken_for_a_refusal(text: str) -> None:
    assert forbidden(text, "x") is None
