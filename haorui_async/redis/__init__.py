"""What several processes sharing one gateway account need, on Redis (the `[redis]` extra).

- `RedisRateLimiter`: the account's rate limit and the gateway's pause, for every process.
"""

from __future__ import annotations

from ._limiter import RedisRateLimiter, Turn

__all__ = ["RedisRateLimiter", "Turn"]
