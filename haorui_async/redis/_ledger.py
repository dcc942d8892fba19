"""`Ledger`: what became of each message of a campaign, in Redis, written before it is sent.

The queue engine delivers each job at least once (a killed worker's job is delivered again);
the ledger makes that safe, with the discipline of the bulk command's journal:

- `begin(uid)` marks the message "attempting" *before* its request can go out, atomically:
  only the first delivery of a job gets to send; a later one finds the entry;
- an entry "done" holds the outcome: that message is never sent again;
- an entry still "attempting" may have reached the gateway: it is reconciled (lookups,
  delivery reports), never sent blindly.

Times are the Redis server's (`TIME`), so a worker on another host reads the same ages.

Keys, for a campaign NAME under `prefix`: `{prefix}:{NAME}:rows` (row number -> uid, or ""
for a row that is not a message: what was enqueued), `{prefix}:{NAME}:ledger` (uid -> the
entry as JSON) and `{prefix}:{NAME}:invalid` (row number -> the outcome of a row that is not
a message).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import attrs

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_PREFIX", "ATTEMPTING", "DONE", "Entry", "Ledger"]

DEFAULT_PREFIX: Final = "haorui_async:campaign"
ATTEMPTING: Final = "attempting"
DONE: Final = "done"

#: KEYS[1]: the ledger. ARGV: uid, row, line. An entry exists: return it. Else write one
#: "attempting" at the server's time and return nothing: the caller may send.
_BEGIN: Final = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found then
  return found
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({
  state = 'attempting', row = tonumber(ARGV[2]), line = tonumber(ARGV[3]), attempted_at = now
}))
return false
"""

#: KEYS[1]: the ledger. ARGV[1]: uid. Removes its entry if it is still "attempting".
_RELEASE: Final = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found and cjson.decode(found)['state'] == 'attempting' then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return false
"""

#: KEYS[1]: the ledger. ARGV: uid, and the entry's new fields as JSON, with the server's
#: time under ARGV[3] (a field name); an entry that is not there is made only where ARGV[4]
#: is "create" (with all its fields), else left alone. Returns nothing.
_UPDATE: Final = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found and ARGV[4] ~= 'create' then
  return false
end
local entry = found and cjson.decode(found) or {}
for name, value in pairs(cjson.decode(ARGV[2])) do
  entry[name] = value
end
if ARGV[3] ~= '' then
  local t = redis.call('TIME')
  entry[ARGV[3]] = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return false
"""


@attrs.frozen
class Entry:
    """One message's entry in the ledger.

    Attributes:
        uid: the message's uid.
        state: "attempting" (may have gone out, no outcome) or "done".
        row: its row in the campaign's input, from 1.
        line: the input line where the row starts.
        kind: the outcome's kind once done ("sent", "failed", ...).
        record: the outcome as the bulk command writes it (a JSON object), once done.
        attempted_at: when it was last marked attempting (the Redis server's clock).
        ended_at: when its last attempt ended without a known outcome, if one did.
        missed_at: when a lookup first found nothing since then (reconciliation's first
            step), if one did.
    """

    uid: str
    state: Literal["attempting", "done"]
    row: int
    line: int
    kind: str | None = None
    record: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    attempted_at: float | None = None
    ended_at: float | None = None
    missed_at: float | None = None

    @classmethod
    def from_json(cls, uid: str, text: str | bytes) -> Entry:
        fields = json.loads(text)
        return cls(
            uid,
            fields["state"],
            int(fields["row"]),
            int(fields["line"]),
            kind=fields.get("kind"),
            record=fields.get("record"),
            attempted_at=fields.get("attempted_at"),
            ended_at=fields.get("ended_at"),
            missed_at=fields.get("missed_at"),
        )


class Ledger:
    """The ledger of one campaign (see the module's docstring).

    Args:
        redis: a `redis.asyncio.Redis` client.
        campaign: the campaign's name.
        prefix: the keys' prefix.
    """

    def __init__(self, redis: Redis, campaign: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.campaign = campaign
        self.rows_key = f"{prefix}:{campaign}:rows"
        self.entries_key = f"{prefix}:{campaign}:ledger"
        self.invalid_key = f"{prefix}:{campaign}:invalid"
        self.meta_key = f"{prefix}:{campaign}:meta"
        self.uids_key = f"{prefix}:{campaign}:uids"
        self._begin: Any = redis.register_script(_BEGIN)
        self._release: Any = redis.register_script(_RELEASE)
        self._update: Any = redis.register_script(_UPDATE)

    def __repr__(self) -> str:
        return f"<Ledger campaign={self.campaign!r}>"

    async def now(self) -> float:
        """The Redis server's clock, in seconds."""
        seconds, micros = await cast("Awaitable[tuple[int, int]]", self.redis.time())
        return seconds + micros / 1_000_000

    # -- the rows enqueued ------------------------------------------------------------------

    async def claim(self, fingerprint: str) -> str:
        """Tie the campaign to the input file of `fingerprint` (on first use); return the
        campaign's job id, part of its generated uids (another campaign of the same file has
        other uids, so a lookup for one campaign's message never finds the other's).

        Raises:
            ConfigurationError: the campaign holds the rows of another file.
        """
        redis = self.redis
        await cast("Awaitable[int]", redis.hsetnx(self.meta_key, "fingerprint", fingerprint))
        await cast("Awaitable[int]", redis.hsetnx(self.meta_key, "job", secrets.token_hex(4)))
        held = await cast(
            "Awaitable[list[bytes | None]]", redis.hmget(self.meta_key, ["fingerprint", "job"])
        )
        if held[0] is not None and held[0].decode() != fingerprint:
            raise ConfigurationError(
                f"campaign {self.campaign}: it holds the rows of another input file; "
                "give the campaign another name"
            )
        return "" if held[1] is None else held[1].decode()

    async def claim_uid(self, uid: str, row: int) -> int:
        """Give `uid` to `row` unless an earlier row has it; return the row that has it."""
        redis = self.redis
        await cast("Awaitable[int]", redis.hsetnx(self.uids_key, uid, str(row)))
        holder = await cast("Awaitable[bytes | None]", redis.hget(self.uids_key, uid))
        return row if holder is None else int(holder)

    async def add_row(self, row: int, uid: str) -> bool:
        """Record that `row` (of `uid`, or "" for a row that is not a message) was enqueued;
        False if it already was."""
        added = await cast("Awaitable[int]", self.redis.hsetnx(self.rows_key, str(row), uid))
        return bool(added)

    async def has_row(self, row: int) -> bool:
        found = await cast("Awaitable[bool]", self.redis.hexists(self.rows_key, str(row)))
        return bool(found)

    async def record_invalid(self, row: int, record: Mapping[str, Any]) -> None:
        """Record the outcome of a row that is not a message (nothing is sent for it)."""
        text = json.dumps(dict(record))
        await cast("Awaitable[int]", self.redis.hset(self.invalid_key, str(row), text))

    async def invalid(self) -> dict[int, dict[str, Any]]:
        """The outcomes of the rows that are not messages, by row."""
        found = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(self.invalid_key))
        return {int(row): json.loads(text) for row, text in found.items()}

    async def rows(self) -> dict[int, str]:
        """Every row enqueued, with its uid."""
        found = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(self.rows_key))
        return {int(row): uid.decode() for row, uid in found.items()}

    # -- the entries ------------------------------------------------------------------------

    async def begin(self, uid: str, row: int, line: int) -> Entry | None:
        """Mark `uid` attempting, unless it has an entry: None (send it now), or the entry."""
        found = await self._begin(keys=[self.entries_key], args=[uid, row, line])
        return None if found is None else Entry.from_json(uid, found)

    async def attempt_again(self, uid: str) -> None:
        """Mark `uid` attempting anew (found not accepted: about to be sent again)."""
        await self._update(
            keys=[self.entries_key],
            args=[
                uid,
                json.dumps({"state": ATTEMPTING, "ended_at": None, "missed_at": None}),
                "attempted_at",
                "",
            ],
        )

    async def release(self, uid: str) -> None:
        """Forget the attempt of `uid`, which provably never went out: the next delivery of
        its job sends it as new."""
        await self._release(keys=[self.entries_key], args=[uid])

    async def ended_unknown(self, uid: str) -> None:
        """Record that the last attempt of `uid` ended without a known outcome, now."""
        await self._update(keys=[self.entries_key], args=[uid, "{}", "ended_at", ""])

    async def missed(self, uid: str) -> None:
        """Record that a lookup of `uid` found nothing, now."""
        await self._update(keys=[self.entries_key], args=[uid, "{}", "missed_at", ""])

    async def finish(self, uid: str, kind: str, record: Mapping[str, Any]) -> None:
        """Record the outcome of `uid`: it is never sent again (made whole if its entry was
        lost, say with Redis's last second of writes)."""
        fields: dict[str, Any] = {"state": DONE, "kind": kind, "record": dict(record)}
        for name in ("row", "line"):
            if record.get(name) is not None:
                fields[name] = record[name]
        args = [uid, json.dumps(fields), "ended_at", "create"]
        await self._update(keys=[self.entries_key], args=args)

    async def entry(self, uid: str) -> Entry | None:
        found = await cast("Awaitable[bytes | None]", self.redis.hget(self.entries_key, uid))
        return None if found is None else Entry.from_json(uid, found)

    async def entries(self) -> list[Entry]:
        """Every entry, by row."""
        found = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(self.entries_key))
        entries = [Entry.from_json(uid.decode(), text) for uid, text in found.items()]
        return sorted(entries, key=lambda entry: entry.row)
