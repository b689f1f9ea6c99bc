"""EtcdView: a reset reads etcd whole once, then only keys and revisions, fetching the values of changed keys."""

from __future__ import annotations

from collections.abc import Iterator

from pytest_vcluster.core.snapshot import EtcdView


class FakeEtcd:
    """etcd's keyspace with its revision rule: every write (a transaction's ops together) gets the next revision."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.revision = 1
        self.data = {k: (v, 1) for k, v in data.items()}
        self.fetched: list[list[bytes]] = []
        self.full_reads = 0

    def write(self, key: bytes, value: bytes | None) -> None:  # a controller, between the view's reads
        self.revision += 1
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = (value, self.revision)

    def records(self, prefix: bytes = b"/registry/", *, keys_only: bool = False,
                page: int = 500) -> Iterator[tuple[bytes, bytes, int]]:
        if not keys_only:
            self.full_reads += 1
        for key in sorted(self.data):
            if key.startswith(prefix):
                value, revision = self.data[key]
                yield key, b"" if keys_only else value, revision

    def get(self, keys: list[bytes]) -> dict[bytes, tuple[bytes, int]]:
        self.fetched.append(sorted(keys))
        return {k: self.data[k] for k in keys if k in self.data}

    def apply(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> dict[bytes, int]:
        self.revision += 1
        for key in deletes:
            self.data.pop(key, None)
        for key, value in puts:
            self.data[key] = (value, self.revision)
        return {key: self.revision for key, _ in puts}


def test_refresh_fetches_only_what_changed_since_and_sees_every_kind_of_change() -> None:
    etcd = FakeEtcd({b"/registry/a": b"1", b"/registry/b": b"2", b"/registry/c": b"3", b"/other/x": b"9"})
    view = EtcdView(etcd)  # type: ignore[arg-type]
    assert view.current() == {b"/registry/a": b"1", b"/registry/b": b"2", b"/registry/c": b"3"}
    view.apply([(b"/registry/a", b"1-reset"), (b"/registry/d", b"4")], [b"/registry/c"])
    assert view.refresh() == {b"/registry/a": b"1-reset", b"/registry/b": b"2", b"/registry/d": b"4"}
    assert etcd.fetched == [[]], "its own writes are known: nothing to fetch"
    etcd.write(b"/registry/b", b"2-by-a-controller")
    etcd.write(b"/registry/d", None)
    etcd.write(b"/registry/e", b"5")
    etcd.write(b"/registry/a", b"1-reset")  # the same value written again is a change too
    assert view.refresh() == {b"/registry/a": b"1-reset", b"/registry/b": b"2-by-a-controller",
                              b"/registry/e": b"5"}
    assert etcd.fetched[-1] == [b"/registry/a", b"/registry/b", b"/registry/e"]
    assert view.refresh() == etcd_state(etcd) and etcd.fetched[-1] == []
    assert etcd.full_reads == 1


def test_a_key_deleted_between_the_listing_and_the_fetch_is_gone() -> None:
    etcd = FakeEtcd({b"/registry/a": b"1"})
    view = EtcdView(etcd)  # type: ignore[arg-type]
    etcd.write(b"/registry/a", b"2")
    real_get = etcd.get

    def get_after_delete(keys: list[bytes]) -> dict[bytes, tuple[bytes, int]]:
        etcd.write(b"/registry/a", None)
        return real_get(keys)

    etcd.get = get_after_delete  # type: ignore[method-assign]
    assert view.refresh() == {}


def etcd_state(etcd: FakeEtcd) -> dict[bytes, bytes]:
    return {k: v for k, (v, _) in etcd.data.items() if k.startswith(b"/registry/")}
