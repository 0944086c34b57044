"""Retry policy and run bounds: pure functions, checked against the documented numbers."""

from __future__ import annotations

import pytest

from picloud.store.triggers import Trigger
from picloud.triggers.delivery import MAX_DEPTH, backoff_ms
from picloud.triggers.dispatcher import Limits


def _trigger(base: int, cap: int) -> Trigger:
    return Trigger(
        "t", "home", "kv", "s", None, "c", "insert", None, None, 3, base, cap, True, 0, None, 0
    )


def test_default_backoff_is_1s_doubling_capped_at_5min() -> None:
    t = _trigger(1000, 300_000)
    waits = [backoff_ms(t, n) for n in range(1, 12)]
    assert waits[:5] == [1000, 2000, 4000, 8000, 16000]
    assert waits[-1] == 300_000
    assert max(waits) == 300_000
    assert backoff_ms(t, 10_000) == 300_000  # no overflow on absurd counts


def test_per_trigger_backoff() -> None:
    assert [backoff_ms(_trigger(10, 25), n) for n in (1, 2, 3)] == [10, 20, 25]


def test_loop_cut_depth_is_8() -> None:
    assert MAX_DEPTH == 8


@pytest.mark.parametrize(
    ("concurrency", "workers", "per_app_workers", "expected"),
    [
        (16, None, None, (16, 8, 7)),  # no executor bounds known
        (16, 32, 16, (16, 8, 7)),  # a 2-core board: the setting binds
        (16, 8, 4, (7, 3, 2)),  # a small pool: one worker left for HTTP calls
        (16, 4, 2, (3, 1, 1)),
        (1, 32, 16, (1, 1, 1)),
        (0, None, None, (1, 1, 1)),
    ],
)
def test_limits_leave_room_for_http_and_siblings(
    concurrency: int,
    workers: int | None,
    per_app_workers: int | None,
    expected: tuple[int, int, int],
) -> None:
    limits = Limits.derive(concurrency, workers, per_app_workers)
    assert (limits.total, limits.per_app, limits.per_trigger) == expected
