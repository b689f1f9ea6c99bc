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
