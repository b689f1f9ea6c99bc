"""Snapshots and forks, the pure parts: what a fork copies, keeps and deletes; the file format; the
etcd transactions within etcd's limits; the checks with their messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_vcluster.core import snapshot as _snapshot
from pytest_vcluster.core.errors import ConfigError
from pytest_vcluster.core.snapshot import Snapshot, SnapshotError
from pytest_vcluster.core.values import cluster_options


def snap(*keys: tuple[bytes, bytes], version: str | None = "0.1.0") -> Snapshot:
    return Snapshot(source="vc-t", chart_version=version, taken_at=1.0, values={"a": 1}, keys=keys)


def test_plan_copies_the_templates_objects_and_deletes_what_it_lacks() -> None:
    template = snap(
        (b"/registry/configmaps/team/cfg", b"template"),
        (b"/registry/namespaces/team", b"ns"),
        (b"/registry/namespaces/default", b"same"),
        (b"/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.x", b"crd"),
    )
    current = {
        b"/registry/namespaces/default": b"same",
        b"/registry/configmaps/team/cfg": b"fork",
        b"/registry/secrets/default/only-in-fork": b"x",
    }
    puts, deletes = _snapshot.plan(template, current)
    assert puts == [
        (b"/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.x", b"crd"),
        (b"/registry/configmaps/team/cfg", b"template"),
        (b"/registry/namespaces/team", b"ns"),
    ]
    assert deletes == [b"/registry/secrets/default/only-in-fork"]


@pytest.mark.parametrize("key", [
    b"/registry/configmaps/default/kube-root-ca.crt",
    b"/registry/configmaps/team/kube-root-ca.crt",
    b"/registry/configmaps/kube-system/extension-apiserver-authentication",
    b"/registry/services/specs/default/kubernetes",
    b"/registry/services/endpoints/default/kubernetes",
    b"/registry/endpointslices/default/kubernetes",
])
def test_the_fork_keeps_its_own_certificates_and_api_address(key: bytes) -> None:
    puts, deletes = _snapshot.plan(snap((key, b"template's")), {key: b"fork's"})
    assert (puts, deletes) == ([], [])
    assert _snapshot.plan(snap(), {key: b"fork's"}) == ([], [])


@pytest.mark.parametrize("key", [
    b"/registry/events/default/web.123",
    b"/registry/leases/kube-system/kube-controller-manager",
    b"/registry/masterleases/10.0.0.1",
    b"/registry/pods/team/web-5d4f-abcde",
    b"/registry/minions/pytest-vcluster-host",
])
def test_the_templates_processes_pods_and_nodes_are_neither_copied_nor_deleted(key: bytes) -> None:
    assert _snapshot.plan(snap((key, b"t")), {key: b"f"}) == ([], [])
    assert _snapshot.plan(snap(), {key: b"f"}) == ([], [])


def test_the_forks_ip_allocations_are_never_deleted() -> None:
    key = b"/registry/ipaddresses/10.96.0.7"
    assert _snapshot.plan(snap(), {key: b"f"}) == ([], [])
    other = b"/registry/ipaddresses/10.96.0.9"
    assert _snapshot.plan(snap((other, b"t")), {}) == ([(other, b"t")], [])


def test_snapshot_round_trips_through_bytes_and_files(tmp_path: Path) -> None:
    original = snap((b"/registry/a", b"\x00\xffbinary"), (b"/registry/b", b""))
    assert Snapshot.from_bytes(original.to_bytes()) == original
    assert Snapshot.read(original.write(tmp_path / "t.snapshot")) == original
    assert original.size == len(b"/registry/a") + 8 + len(b"/registry/b")
    assert repr(original) == "<Snapshot of vc-t: 2 keys, 0 KiB>"


def test_a_file_that_is_no_snapshot_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.snapshot"
    path.write_bytes(b"not gzip")
    with pytest.raises(SnapshotError, match=r"^.*x\.snapshot is not a pytest-vcluster snapshot: "):
        Snapshot.read(path)


def test_a_snapshot_of_another_chart_version_is_refused() -> None:
    _snapshot.check_usable(snap(version="0.1.0"), "0.1.0")
    with pytest.raises(SnapshotError) as info:
        _snapshot.check_usable(snap(version="0.1.0"), "0.2.0")
    assert str(info.value) == ("the snapshot of vc-t was taken with chart version 0.1.0, but this cluster's chart is "
                               "version 0.2.0: prepare the template again with this chart")


class RecordingEtcd(_snapshot.Etcd):
    def __init__(self) -> None:
        super().__init__(port=0)
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def call(self, path: str, body: Any) -> dict[str, Any]:
        self.requests.append((path, body))
        return {}


def test_apply_splits_transactions_below_etcds_operation_and_size_limits() -> None:
    etcd = RecordingEtcd()
    puts = [(f"/registry/k{i}".encode(), b"v") for i in range(250)]
    deletes = [b"/registry/gone"]
    etcd.apply(puts, deletes)
    batches = [body["success"] for path, body in etcd.requests]
    assert all(path == "/v3/kv/txn" for path, _ in etcd.requests)
    assert [len(b) for b in batches] == [100, 100, 51]
    assert batches[0][0] == {"request_delete_range": {"key": "L3JlZ2lzdHJ5L2dvbmU="}}
    big = [(f"/registry/big{i}".encode(), b"x" * 400_000) for i in range(5)]
    etcd.requests.clear()
    etcd.apply(big, [])
    for _, body in etcd.requests:
        assert len(json.dumps(body)) <= _snapshot.MAX_TXN_BYTES + 100
    assert sum(len(body["success"]) for _, body in etcd.requests) == 5


class PagedEtcd(_snapshot.Etcd):
    def __init__(self, keys: list[bytes]) -> None:
        super().__init__(port=0)
        self.keys = keys

    def call(self, path: str, body: Any) -> dict[str, Any]:
        import base64

        start = base64.b64decode(body["key"])
        rest = [k for k in self.keys if k >= start]
        page = rest[: body["limit"]]
        return {"kvs": [{"key": base64.b64encode(k).decode(), "value": base64.b64encode(b"v").decode()}
                        for k in page], "more": len(rest) > len(page)}


def test_items_pages_through_every_key() -> None:
    keys = sorted(f"/registry/k{i:03}".encode() for i in range(7))
    assert [k for k, _ in PagedEtcd(keys).items(page=3)] == keys


def test_fork_option_takes_a_snapshot_or_a_fixture_name() -> None:
    s = snap()
    assert cluster_options({"fork": s}, where="w").fork is s
    assert cluster_options({"fork": "vcluster_template"}, where="w").fork == "vcluster_template"
    with pytest.raises(ConfigError) as info:
        cluster_options({"fork": 3}, where="w")
    assert str(info.value) == ("w: fork=3 is not valid: give a Snapshot (vcluster_manager.template(...), "
                               "vc.snapshot()) or the name of a fixture returning one, e.g. fork='vcluster_template'")


@pytest.mark.usefixtures("clean_vcluster_env")
def test_fork_of_an_undefined_template_says_how_to_define_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.vcluster(fork="vcluster_template")
        def test_default_template(vcluster):
            pass

        @pytest.mark.vcluster(fork="no_such_fixture")
        def test_unknown(vcluster):
            pass

        @pytest.fixture(scope="session")
        def not_a_snapshot():
            return 42

        def test_wrong_type(vcluster_factory):
            vcluster_factory(fork="not_a_snapshot")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2, failed=1)
    result.stdout.fnmatch_lines([
        "*vcluster_template is not defined: override it in conftest.py, e.g.",
        "    @pytest.fixture(scope='session')",
        "    def vcluster_template(vcluster_manager):",
        "        return vcluster_manager.template('my-operator', prepare=install_my_operator)",
    ])
    result.stdout.fnmatch_lines([
        "*test_unknown*: @pytest.mark.vcluster: fork='no_such_fixture': no fixture of that name; define a session "
        "fixture returning vcluster_manager.template(name, prepare) (see the vcluster_template fixture)",
    ])
    result.stdout.fnmatch_lines([
        "*vcluster_factory(): fork='not_a_snapshot': fixture not_a_snapshot returned int, not a Snapshot: "
        "return vcluster_manager.template(name, prepare) or vc.snapshot()",
    ])
