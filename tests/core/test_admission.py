"""`Admission`'s slots: taken at once while free, then first come, first served; a waiter
cancelled or out of time takes nothing, and a slot handed to a waiter in the loop iteration
it was cancelled in passes on to the next. No slot is ever lost or made."""

from __future__ import annotations

import asyncio

import pytest

from haorui_async._admission import Admission, Late

FAR = 1e9  # a deadline that never comes


def admission(slots: int) -> Admission:
    return Admission(slots, None, asyncio.sleep)


def free_slots(gate: Admission) -> int:
    """How many slots can be taken at once now (each taken one is given back)."""
    loop = asyncio.get_running_loop()
    taken = 0
    while gate.enter_now(FAR, loop.time()):
        taken += 1
    for _ in range(taken):
        gate.leave()
    return taken


async def test_free_slots_are_taken_at_once_then_waiters_queue_in_order() -> None:
    gate = admission(2)
    loop = asyncio.get_running_loop()
    assert gate.enter_now(FAR, loop.time())
    await gate.enter(FAR)  # the second, without waiting
    assert not gate.enter_now(FAR, loop.time())
    order: list[int] = []

    async def wait(n: int) -> None:
        await gate.enter(FAR)
        order.append(n)

    waiting = [asyncio.ensure_future(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == []
    for n in range(3):
        gate.leave()
        await waiting[n]
        assert order == list(range(n + 1))
    gate.leave()  # two slots are held (the last two waiters'): one is given back
    assert free_slots(gate) == 1
    gate.leave()
    assert free_slots(gate) == 2


@pytest.mark.parametrize("handed_first", [False, True], ids=["waiting", "handed-a-slot"])
async def test_a_cancelled_waiter_takes_no_slot(handed_first: bool) -> None:
    """Cancelled while it waits, or once handed a slot in the same loop iteration (before it
    ran again): either way the slot goes to the next waiter."""
    gate = admission(1)
    await gate.enter(FAR)
    cancelled = asyncio.ensure_future(gate.enter(FAR))
    after = asyncio.ensure_future(gate.enter(FAR))
    await asyncio.sleep(0)
    if handed_first:
        gate.leave()  # handed to `cancelled`...
    cancelled.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    if not handed_first:
        gate.leave()
    await after
    gate.leave()
    assert free_slots(gate) == 1


async def test_no_free_slot_before_the_deadline_is_late_and_takes_nothing() -> None:
    gate = admission(1)
    await gate.enter(FAR)
    loop = asyncio.get_running_loop()
    for _ in range(3):
        with pytest.raises(Late, match="no free slot among 1"):
            await gate.enter(loop.time() + 0.01)
    assert not gate._waiters, "a waiter out of time leaves the queue"
    gate.leave()
    assert free_slots(gate) == 1


async def test_a_passed_deadline_is_late_even_with_a_slot_free() -> None:
    gate = admission(1)
    loop = asyncio.get_running_loop()
    assert not gate.enter_now(loop.time(), loop.time())
    with pytest.raises(Late, match="deadline passed"):
        await gate.enter(loop.time())
    assert free_slots(gate) == 1
