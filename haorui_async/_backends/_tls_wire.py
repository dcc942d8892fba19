"""TLS for the pool's connections: an `ssl.SSLObject` over two memory BIOs, no socket of its own.

Why not `loop.create_connection(..., ssl=context)`: asyncio's TLS layer (`sslproto.py`) gives
every connection a zero-filled 256 KiB read buffer (`SSLProtocol.max_size`), resident for the
connection's whole life: about 300 MB for a sender with 1,000 TLS connections. A `Connection`
on a plain TCP transport instead passes the bytes it receives through a `TLSWire` and the
bytes it writes back out through it: OpenSSL's own buffers and whatever one record holds,
nothing more, and one Python protocol layer less per message.

`TLSWire` does no I/O and knows no event loop (sans-I/O): `start()`, `receive()`, `encrypt()`
and `close_notify()` take and give bytes; the connection writes what they give to its
transport, and decides what an `ssl.SSLError` means (a failed handshake is a connect error,
naming the verification failure; after the request went out, the request may have been sent).
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Final

__all__ = ["TLSWire"]

#: The most one `SSLObject.read()` returns: a TLS record's whole plaintext (16 KiB). The bytes
#: object is allocated per read and shrunk to what was read; nothing stays per connection.
_READ_SIZE: Final = 16384


class TLSWire:
    """The client side of one TLS session, bytes in and bytes out.

    `handshaken` becomes True once `receive()` has completed the handshake (the server's
    certificate and host name verified by the context); `peer_closed` once the server's
    close_notify was read. After each `receive()` or `encrypt()`, `outgoing()` holds the
    bytes to send (handshake messages, alerts, records).
    """

    __slots__ = ("_incoming", "_outgoing", "_ssl", "handshaken", "peer_closed")

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        self.handshaken = False
        self.peer_closed = False

    def start(self) -> bytes:
        """Begin the handshake: the ClientHello to send."""
        self._handshake()
        return self._outgoing.read()

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the server; the application data they complete (maybe b"").

        Raises:
            ssl.SSLError: the handshake failed (e.g. `ssl.SSLCertVerificationError`), or the
                server sent an alert or a record that does not decrypt.
        """
        self._incoming.write(data)
        if not self.handshaken and not self._handshake():
            return b""
        chunks = []
        while True:
            try:
                chunk = self._ssl.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break  # the rest of a record is still on its way (or a ticket was read)
            except ssl.SSLZeroReturnError:  # close_notify after ours
                chunk = b""
            if not chunk:  # close_notify: the server will send nothing more
                self.peer_closed = True
                break
            chunks.append(chunk)
            if not self._incoming.pending and not self._ssl.pending():
                # All taken: not asking again spares an SSLWantReadError per answer.
                break
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def encrypt(self, data: bytes) -> bytes:
        """`data` as TLS records, with anything else waiting to go out before it.

        Raises:
            ssl.SSLError: the session cannot send (e.g. it was closed).
        """
        self._ssl.write(data)
        return self._outgoing.read()

    def outgoing(self) -> bytes:
        """What is waiting to go out (b"" if nothing): after `receive()`, handshake messages,
        a reply to a key update, or an alert about what was received."""
        return self._outgoing.read() if self._outgoing.pending else b""

    def close_notify(self) -> bytes:
        """Close the session: the close_notify alert to send (b"" before the handshake is
        done, when there is no session to close)."""
        if not self.handshaken:
            return b""
        # SSLWantReadError: the server's close_notify is not awaited, the socket closes next.
        with contextlib.suppress(ssl.SSLError):
            self._ssl.unwrap()
        return self.outgoing()

    def _handshake(self) -> bool:
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return False
        self.handshaken = True
        return True
