"""Every default of the SDK, in one place, each with the reason for its value."""

from __future__ import annotations

from typing import Final

#: The documented host; hosts are case-insensitive, so the lower-case form is used.
DEFAULT_BASE_URL: Final = "https://api.haorui.com"

#: The one documented endpoint, relative to the base URL.
SEND_SMS_PATH: Final = "/api/SendSMS"

#: POST with a JSON body keeps the password out of URLs (proxy and server logs);
#: the vendor family documents both forms and recommends POST.
DEFAULT_METHOD: Final = "POST"

#: httpx's own transport (sharded into small pools) is the default: respx intercepts it in
#: users' tests. "fast" is opt-in (see docs/backends.md for the measured difference).
DEFAULT_BACKEND: Final = "httpx"

#: Transactional is the safe default: one-time codes and alerts are transactional, and
#: marketing traffic may be filtered by do-not-disturb lists.
DEFAULT_SMS_TYPE: Final = "T"

#: "auto" picks GSM text ("T") when every character fits the GSM 03.38 alphabet, else "U".
DEFAULT_ENCODING: Final = "auto"

#: Environment variables read when credentials are not passed explicitly.
ENV_API_ID: Final = "HAORUI_API_ID"
ENV_API_PASSWORD: Final = "HAORUI_API_PASSWORD"
ENV_BASE_URL: Final = "HAORUI_BASE_URL"

# Timeouts, in seconds.
#: A TCP + TLS handshake to a healthy gateway takes well under a second; 5 s leaves room for
#: a loaded event loop (PERF.md: with 1000 connects at once the loop needs several seconds).
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
#: The gateway answers once it has queued the message; a slow answer is not proof of failure,
#: and a read timeout is an unknown outcome, so it is generous.
DEFAULT_READ_TIMEOUT: Final = 15.0
#: A SendSMS request is a few hundred bytes: it fits in one socket buffer.
DEFAULT_WRITE_TIMEOUT: Final = 5.0
#: Waiting happens in the sender's semaphore, so the pool should hand out a connection at once.
DEFAULT_POOL_TIMEOUT: Final = 5.0
#: The overall deadline of one send, retries and back-off included.
DEFAULT_DEADLINE: Final = 60.0

#: A rate limit lets this fraction of a second's worth of requests go out in one burst: a
#: window of T seconds then holds at most rate * (T + RATE_LIMIT_BURST) request starts.
RATE_LIMIT_BURST: Final = 0.1

#: Requests in flight per sender. The pool holds as many connections, all kept alive, so a
#: connection is never closed only to be opened again at the next message.
DEFAULT_MAX_CONCURRENCY: Final = 100

#: Connections per shard of the default backend. httpcore walks every connection of a pool on
#: each request and each response close, so the smallest pools are the fastest: measured on a
#: 2-core machine at 100 and 1000 sends in flight, shards of 1 connection beat 2, 4 and 8
#: (docs/backends.md has the figures and the command).
DEFAULT_SHARD_SIZE: Final = 1

# Bulk sending (send_many).
#: Seconds that sends in flight may take to finish after the caller stops early: a healthy
#: gateway answers in well under a second, and each send already has its own timeouts.
DEFAULT_GRACE: Final = 5.0
#: The window of started-but-not-yielded messages, as a multiple of the concurrency: room for
#: one slow message at the head of an ordered run without stalling every other worker at once.
WINDOW_FACTOR: Final = 2

# Retries (only of failures that prove the message was never accepted).
#: Total attempts, the first included.
DEFAULT_ATTEMPTS: Final = 4
#: Full-jitter exponential back-off: the n-th wait is uniform in [0, min(max, base * 2**(n-1))].
DEFAULT_BACKOFF_BASE: Final = 0.5
DEFAULT_BACKOFF_MAX: Final = 10.0
#: A Retry-After longer than this gives up at once instead of holding the caller.
DEFAULT_RETRY_AFTER_CAP: Final = 60.0

#: The User-Agent names the SDK so gateway operators can tell its traffic apart.
USER_AGENT_PREFIX: Final = "haorui-async"

#: Logger used for every record the SDK writes (DEBUG per attempt, nothing above DEBUG per message).
LOGGER_NAME: Final = "haorui_async"

#: Idle connections are closed by the client after this many seconds: below the 5 s that common
#: servers (uvicorn, many proxies) allow, so the client, not the server, closes an idle connection
#: and a request is never written onto a connection the server is closing (a spurious unknown).
DEFAULT_KEEPALIVE_EXPIRY: Final = 4.0

# Bounds on what the gateway may send back.
#: The most bytes of a response head (status line and headers) read before the answer is given
#: up as unknown: the documented answer's head is a few hundred bytes; 16 KiB is h11's own
#: default and leaves room for proxies that add headers, while 10,000 stray headers are refused.
MAX_ANSWER_HEAD: Final = 16 * 1024
#: The most bytes of a response body read: the documented answer is under 200 bytes, and the
#: family's richest (a delivery-status record) under 2 KiB; 64 KiB bounds the memory of a send in
#: flight (a 50 MB body or a decompression bomb costs nothing) with room for unknown keys.
MAX_ANSWER_BODY: Final = 64 * 1024

# Reconciling unknown outcomes.
#: Seconds after the last attempt before a lookup that finds nothing counts, and between the
#: two such lookups that make a message "not accepted". The family's records are written when
#: the gateway queues a message; 10 s leaves room for a slow gateway while still fitting twice
#: in the default deadline of a send (60 s) with its first attempts.
DEFAULT_RECONCILE_SETTLE: Final = 10.0

#: Seconds a request that got no answer in time (a timeout, an HTTP 504) may still be in the
#: gateway's hands: reconciliation counts its settle time from this long after the attempt
#: ended, since a gateway that answers slowly may also accept late.
RECONCILE_IN_FLIGHT: Final = 60.0
