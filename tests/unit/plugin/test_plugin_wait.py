"""wait_until / VCluster.wait: the poll loop examples and tests use instead of their own."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import WaitTimeout, wait_until


def test_returns_the_first_truthy_value_and_treats_404_and_503_as_not_yet(clock: Any) -> None:
    answers: list[Any] = [ApiException(status=404, reason="Not Found"), None, ApiException(status=503), False, "ok"]

    def probe() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_until("x", probe, timeout=10, interval=1, sleep=clock.sleep, clock=clock) == "ok"
    assert clock.now == 4


def test_a_real_error_is_raised_at_once(clock: Any) -> None:

    def probe() -> None:
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException) as info:
        wait_until("x", probe, timeout=10, sleep=clock.sleep, clock=clock)
    assert info.value.status == 403 and clock.now == 0


def test_timeout_names_what_the_last_value_and_diagnostics(clock: Any) -> None:
    with pytest.raises(WaitTimeout) as info:
        wait_until("pod web to run", lambda: "Pending" == "Running", timeout=3, interval=1, sleep=clock.sleep,
                   clock=clock, diagnose=lambda: "warnings in the virtual cluster:\n  (none)")
    assert str(info.value) == ("timed out after 3s waiting for pod web to run; last seen: False\n"
                               "warnings in the virtual cluster:\n  (none)")


def test_timeout_after_errors_says_the_last_error(clock: Any) -> None:

    def probe() -> None:
        raise ApiException(status=404, reason="Not Found")

    with pytest.raises(WaitTimeout, match=r"waiting for cm; last seen: 'HTTP 404 Not Found'$"):
        wait_until("cm", probe, timeout=1, interval=0.5, sleep=clock.sleep, clock=clock)


def test_timeout_after_a_dropped_connection_keeps_the_port_forward_cause_and_the_diagnostics(
    clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both explanations: why the port-forward could not open its stream, and ``diagnose()`` (VCluster.wait always
    passes one; the port-forward's line was once overwritten by it)."""
    from pytest_vcluster.core import portforward

    monkeypatch.setattr(portforward, "failing", lambda: ["port-forward 127.0.0.1:1 (r): cannot open a stream: boom"])

    def probe() -> None:
        raise ConnectionResetError("reset by peer")

    with pytest.raises(WaitTimeout) as info:
        wait_until("cm", probe, timeout=1, interval=0.5, sleep=clock.sleep, clock=clock,
                   diagnose=lambda: "warnings in the virtual cluster:\n  (none)")
    assert str(info.value) == ("timed out after 1s waiting for cm; last seen: 'ConnectionResetError: reset by peer'\n"
                               "port-forward 127.0.0.1:1 (r): cannot open a stream: boom\n"
                               "warnings in the virtual cluster:\n  (none)")


def test_namespaces_gone_waits_with_the_one_primitive_and_returns_those_left(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_vcluster.core import cleanup

    reads: list[str] = []

    class Core:
        def read_namespace(self, name: str, **_: Any) -> None:
            reads.append(name)
            if name == "gone" or (name == "later" and reads.count("later") > 2):
                raise ApiException(status=404, reason="Not Found")
            if name == "flaky" and reads.count("flaky") == 1:
                raise ConnectionResetError()

    sleeps: list[float] = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    assert cleanup.wait_namespaces_gone(Core(), ["gone", "later"], timeout=60) == []
    assert sleeps == [0.5, 0.75]  # growing pauses
    assert cleanup.wait_namespaces_gone(Core(), [], timeout=60) == []
    assert cleanup.wait_namespaces_gone(Core(), ["stays", "flaky"], timeout=0) == ["stays", "flaky"]
