from __future__ import annotations

import hashlib
import re

import pytest
from syncer_testdata import SETTINGS
from vcluster_syncer.translate.names import (
    host_name,
    host_name_for,
    hostname_for_pod,
    safe_concat,
    token_secret_name,
    translate_label_key,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_KEY_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@pytest.mark.parametrize(
    ("name", "namespace", "vcluster", "expected"),
    [
        ("web", "default", "vc", "web-x-default-x-vc"),
        ("a", "b", "c", "a-x-b-x-c"),
        ("kube-root-ca.crt", "ns", "vc", "kube-root-ca.crt-x-ns-x-vc"),
        # exactly 63 characters stay as they are
        ("n" * 53, "ns", "vc", "n" * 53 + "-x-ns-x-vc"),
    ],
)
def test_short_names_are_plain(name: str, namespace: str, vcluster: str, expected: str) -> None:
    assert host_name(name, namespace, vcluster) == expected
    assert len(expected) <= 63


@pytest.mark.parametrize(
    ("name", "namespace"),
    [
        ("n" * 54, "ns"),  # 64 characters: one over
        ("a" * 63, "b" * 63),
        ("web", "n" * 63),
        ("x" * 253, "default"),
    ],
)
def test_long_names_are_hashed(name: str, namespace: str) -> None:
    full = f"{name}-x-{namespace}-x-vc"
    result = host_name(name, namespace, "vc")
    assert len(result) == 63
    assert result == full[:52] + "-" + hashlib.sha256(full.encode()).hexdigest()[:10]
    assert DNS_LABEL.match(result)


def test_hash_is_deterministic_and_collision_free() -> None:
    a = host_name("a" * 60 + "-one", "ns", "vc")
    b = host_name("a" * 60 + "-two", "ns", "vc")
    assert a[:52] == b[:52]  # same prefix...
    assert a != b  # ...but the hash covers the full name
    assert a == host_name("a" * 60 + "-one", "ns", "vc")


def test_dot_before_hash_is_collapsed() -> None:
    name = "a" * 51 + ".bbbbbbbbbbbbbbbbbb"  # character 52 is a dot
    result = host_name(name, "ns", "vc")
    assert ".-" not in result
    assert DNS_SUBDOMAIN.match(result)


@pytest.mark.parametrize("limit", [63, 253])
def test_safe_concat_respects_limit(limit: int) -> None:
    assert safe_concat("a" * limit, limit) == "a" * limit
    assert len(safe_concat("a" * (limit + 1), limit)) == 63


@pytest.mark.parametrize("kind", ["Pod", "Service", "Endpoints", "ConfigMap", "Secret", "PersistentVolumeClaim",
                                  "NetworkPolicy"])
def test_every_kind_uses_63(kind: str) -> None:
    assert len(host_name_for(kind, "n" * 100, "ns", SETTINGS)) == 63


def test_token_secret_name_is_distinct_from_pod_name() -> None:
    assert token_secret_name("web", "team", SETTINGS) == "web-sa-token-x-team-x-vc"
    assert token_secret_name("web", "team", SETTINGS) != host_name_for("Pod", "web", "team", SETTINGS)


@pytest.mark.parametrize("key", ["app", "app.kubernetes.io/name", "vcluster.loft.sh/namespace", "x" * 63])
def test_label_key_translation(key: str) -> None:
    out = translate_label_key(key, SETTINGS)
    prefix, name = out.split("/")
    assert prefix == "vcluster.loft.sh"
    assert name == "label-vc-x-" + hashlib.sha256(key.encode()).hexdigest()[:10]
    assert LABEL_KEY_NAME.match(name) and len(name) <= 63


def test_label_key_with_long_release_name_fits() -> None:
    from dataclasses import replace

    settings = replace(SETTINGS, vcluster_name="r" * 53)
    name = translate_label_key("app", settings).split("/")[1]
    assert len(name) <= 63 and LABEL_KEY_NAME.match(name)
    assert translate_label_key("app", settings) != translate_label_key("tier", settings)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("web-0", "web-0"), ("a" * 70, "a" * 63), ("a" * 62 + "-b", "a" * 62), ("my.pod", None)],
)
def test_hostname_for_pod(name: str, expected: str | None) -> None:
    assert hostname_for_pod(name) == expected
