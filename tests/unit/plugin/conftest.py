"""Shared by the plugin's unit tests."""

from __future__ import annotations

import pytest


class FakeClock:
    """A monotonic clock that moves only when ``sleep`` is called: waits without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
