"""Shared by the delivery report tests: a callback that records what it is given."""

from __future__ import annotations

import asyncio

import pytest

from haorui_async._delivery import DeliveryReport


class Collector:
    """An async callback that records the reports it is given."""

    def __init__(self) -> None:
        self.reports: list[DeliveryReport] = []
        self.arrived = asyncio.Event()

    async def __call__(self, report: DeliveryReport) -> None:
        self.reports.append(report)
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async def enough() -> None:
            while len(self.reports) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)


@pytest.fixture
def collector() -> Collector:
    return Collector()
