"""Testing kit: the HAORUI gateway without the network, for the SDK's tests and yours.

- `FakeGateway`: the gateway in process, as an httpx transport:
  `AsyncSender(..., transport=gateway.transport)`, then assert on `gateway.messages`.
  Script faults with `gateway.inject(RespondWith(429, retry_after=1), ...)`; `LoseAnswer()`
  accepts the message and loses the answer. It answers `GetDeliveryStatus` and `CheckBalance`
  too (the gateway family's lookups).
- `serve()`: the same gateway on a loopback socket, served by uvicorn (needs the `[emulator]`
  extra), with fault rates, latency and delivery reports; `python -m haorui_async.testing`
  runs it in the foreground.
- `EmulatorProcess`: that foreground emulator in a subprocess on a free loopback port, for a
  `with` block (`emulator.base_url`): client and server share neither a loop nor the GIL.
- `pytest_plugin`: an `emulator` fixture; opt in with
  `pytest_plugins = ["haorui_async.testing.pytest_plugin"]`.

Every gateway here accepts the demo account `DEMO_API_ID` / `DEMO_API_PASSWORD` by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import EmulatorConfig
from ._fake import FakeGateway
from ._faults import (
    DropConnection,
    Fault,
    FaultPlan,
    FaultRates,
    Hang,
    LoseAnswer,
    MalformedBody,
    RefuseConnection,
    RespondWith,
)
from ._model import (
    DEMO_API_ID,
    DEMO_API_PASSWORD,
    DEMO_SENDER_ID,
    GatewayModel,
    Message,
    Reply,
    delivery_report,
)
from ._process import EmulatorNotStarted, EmulatorProcess

if TYPE_CHECKING:
    from ._server import Emulator, serve

__all__ = [
    "DEMO_API_ID",
    "DEMO_API_PASSWORD",
    "DEMO_SENDER_ID",
    "DropConnection",
    "Emulator",
    "EmulatorConfig",
    "EmulatorNotStarted",
    "EmulatorProcess",
    "FakeGateway",
    "Fault",
    "FaultPlan",
    "FaultRates",
    "GatewayModel",
    "Hang",
    "LoseAnswer",
    "MalformedBody",
    "Message",
    "RefuseConnection",
    "Reply",
    "RespondWith",
    "delivery_report",
    "serve",
]


def __getattr__(name: str) -> Any:
    # The server needs uvicorn (an optional extra): import it only when it is asked for.
    if name in ("serve", "Emulator"):
        try:
            from . import _server
        except ImportError as exc:  # pragma: no cover - tested in a subprocess without uvicorn
            raise ImportError(
                f"haorui_async.testing.{name} needs uvicorn: pip install 'haorui-async[emulator]'"
            ) from exc
        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
