"""Unique names and host-name translation (pytest_vcluster.core.naming)."""

from __future__ import annotations

import re
import threading

import pytest

from pytest_vcluster.core import naming as _naming
from pytest_vcluster.core.naming import NameGenerator, make_name, translate_host_name

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_run_ids_are_six_hex_and_random() -> None:
    ids = {_naming.new_run_id() for _ in range(50)}
    assert all(re.fullmatch(r"[0-9a-f]{6}", i) for i in ids)
    assert len(ids) > 45


def test_run_id_from_xdist_token() -> None:
    assert _naming.run_id_from_token("0123abcdef9876") == "0123ab"
    derived = _naming.run_id_from_token("not-hex-token")
    assert re.fullmatch(r"[0-9a-f]{6}", derived)
    assert derived == _naming.run_id_from_token("not-hex-token")


@pytest.mark.parametrize(("worker", "part"), [(None, "m"), ("master", "m"), ("main", "m"), ("gw0", "gw0"),
                                               ("GW_12", "gw-12")])
def test_worker_part(worker: str | None, part: str) -> None:
    assert _naming.worker_part(worker) == part


def test_make_name_shape() -> None:
    assert make_name("1a2b3c", "gw3", 7) == "vc-1a2b3c-gw3-7"
    assert make_name("1a2b3c", "m", 1) == "vc-1a2b3c-m-1"


def test_make_name_is_valid_and_bounded_for_odd_input() -> None:
    name = make_name("ZZ__run__ID__very__long", "Worker.With.Dots_and_more", 123456789, prefix="My_Prefix_" * 5)
    assert DNS1035.match(name), name
    assert len(name) <= 53
    assert _naming.is_valid_name(name)


def test_make_name_prefix_starting_with_digit() -> None:
    name = make_name("abcdef", "gw0", 1, prefix="9lives")
    assert DNS1035.match(name)


def test_names_unique_across_workers_and_runs() -> None:
    names = set()
    for run in ("aaaaaa", "bbbbbb"):
        for worker in ("m", "gw0", "gw1", "gw10"):
            gen = NameGenerator(run, worker)
            names.update(gen.next() for _ in range(20))
    assert len(names) == 2 * 4 * 20


def test_name_generator_thread_safe() -> None:
    gen = NameGenerator("abcdef", "gw0")
    out: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(200):
            name = gen.next()
            with lock:
                out.append(name)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == len(set(out)) == 1600


@pytest.mark.parametrize("bad", ["", "UPPER", "-x", "x-", "1abc", "a" * 54, "a_b"])
def test_invalid_names(bad: str) -> None:
    assert not _naming.is_valid_name(bad)


def test_translate_short() -> None:
    assert translate_host_name("web", "default", "vc-1a2b3c-m-1") == "web-x-default-x-vc-1a2b3c-m-1"


def test_translate_exactly_63_is_kept() -> None:
    name = "n" * (63 - len("-x-ns-x-r"))
    full = f"{name}-x-ns-x-r"
    assert len(full) == 63
    assert translate_host_name(name, "ns", "r") == full


def test_translate_long_is_the_syncers_rule() -> None:
    from vcluster_syncer.translate.names import host_name

    name, ns, release = "a-really-long-deployment-name-for-testing", "my-namespace", "vc-1a2b3c-gw0-12"
    assert len(f"{name}-x-{ns}-x-{release}") > 63
    got = translate_host_name(name, ns, release)
    assert got == host_name(name, ns, release)
    assert len(got) == 63
