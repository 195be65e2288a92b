"""The journal of a bulk run on Celery, in Redis: each recipient's state, shared by the
command that started the run and every worker that sends its chunks.

It holds what the SQLite journal (:mod:`flask_dmmail.bulk.journal`) holds: row numbers,
keyed address hashes, references, states, notification ids, error classes and messages;
never an address or a personalisation value. The emails of a chunk wait under a key of
their own until the chunk is done (:meth:`RedisJournal.put_chunk`).

Exactly once across workers: a worker *claims* a row (pending → in-flight, owned by its
run's lease) before it posts, in one atomic step; a row in-flight whose owner's lease ran
out belongs to a run that died, and the next claim of it says it is in doubt (to be looked
up in Notify before it is sent again); a row owned by a live lease is left to its owner.
Every key of a run shares the hash tag ``{name}``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..errors import JournalError
from ..queued.ledger import redis_errors
from .journal import FAILED, IN_FLIGHT, PENDING, SENT, SKIPPED, Entry

if TYPE_CHECKING:
    import redis

__all__ = ["CLAIMED", "IN_DOUBT", "OWNED", "RedisJournal"]

_FORMAT = "1"
#: What :meth:`RedisJournal.claim` answers besides a final state: the row is this run's
#: now (send it), in doubt (look it up first), or owned by another live run (leave it).
CLAIMED, IN_DOUBT, OWNED = "claimed", "doubt", "busy"
#: How long a chunk's emails wait in Redis at most (a chunk whose task is lost).
CHUNK_TTL = 7 * 24 * 3600
#: Seconds the coordinator's hold on a run lasts unless renewed.
HOLD_SECONDS = 5

_CLAIM = """
local state = redis.call('HGET', KEYS[1], ARGV[1])
if not state then return 'missing' end
if state == 'sent' or state == 'failed' or state == 'skipped' then return state end
if state == 'in-flight' then
  local owner = redis.call('HGET', KEYS[2], ARGV[1])
  if owner and owner ~= '' and owner ~= ARGV[2]
     and redis.call('EXISTS', ARGV[3] .. owner) == 1 then
    return 'busy'
  end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  return 'doubt'
end
redis.call('HSET', KEYS[1], ARGV[1], 'in-flight')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 'claimed'
"""
_FINISH = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[3] == 'in-flight' then
  redis.call('HSET', KEYS[2], ARGV[1], '')
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisJournal:
    """The Redis journal of the bulk run ``name``.

    :param client: a Redis client (answering text).
    :param name: the run's name (``--journal``): the same name resumes the run.
    """

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client = client
        self.name = name
        self._prefix = f"dmmail:bulk:{{{name}}}:"
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._renew = client.register_script(_RENEW)

    def __repr__(self) -> str:
        return f"<RedisJournal {self.name!r}>"

    def key(self, part: str) -> str:
        """The Redis key of one part of the run."""
        return self._prefix + part

    def _do(self, action: Any) -> Any:
        with redis_errors(f"The journal {self.name!r} could not be read or written"):
            return action()

    # -- the coordinator -----------------------------------------------------------------------

    def hold(self, token: str, *, wait: float = HOLD_SECONDS * 2) -> None:
        """Hold the run for one coordinating command (renew with :meth:`renew_hold`). A
        command killed without letting go holds it for at most HOLD_SECONDS more, so this
        waits up to ``wait`` seconds; then JournalError."""
        deadline = time.monotonic() + wait
        while not self._do(
            lambda: self.client.set(self.key("holder"), token, nx=True, ex=HOLD_SECONDS)
        ):
            if time.monotonic() > deadline:
                raise JournalError(
                    f"The journal {self.name!r} is in use by another bulk send; wait for it "
                    "to finish or stop it."
                )
            time.sleep(0.2)

    def renew_hold(self, token: str) -> None:
        """Keep holding the run."""
        self._do(lambda: self._renew(keys=[self.key("holder")], args=[token, HOLD_SECONDS * 1000]))

    def let_go(self, token: str) -> None:
        """Stop holding the run."""
        self._do(lambda: self._renew(keys=[self.key("holder")], args=[token, 1]))

    def claim_run(
        self, *, template_id: str, kind: str, fingerprint: str, total: int, write: bool = True
    ) -> None:
        """Check that the journal is this run's, or (with ``write``) make it so, as
        :meth:`flask_dmmail.bulk.journal.Journal.claim` does; clear a stop or an abort
        left by an earlier command."""
        meta: dict[str, str] = self._do(lambda: self.client.hgetall(self.key("meta")))
        if not meta and not write:
            return
        if not meta:
            values = {
                "format": _FORMAT,
                "template_id": template_id,
                "kind": kind,
                "fingerprint": fingerprint,
                "total": str(total),
                "created_at": str(time.time()),
            }
            self._do(lambda: self.client.hset(self.key("meta"), mapping=cast(Any, values)))
        elif meta.get("format") != _FORMAT:
            raise JournalError(
                f"The journal {self.name!r} was written by another version of flask-dmmail; "
                "finish the send with that version."
            )
        elif meta.get("template_id") != template_id:
            raise JournalError(
                f"The journal {self.name!r} was made for template {meta.get('template_id')}, "
                f"not {template_id}. Resume with the same template; a new journal name is for "
                "a new send (it sends to every recipient)."
            )
        elif meta.get("kind") != kind or meta.get("fingerprint") != fingerprint:
            raise JournalError(
                f"The journal {self.name!r} was made for other recipients (another file, "
                "other rows, another order or other values, or another DM_MAIL_HASH_KEY). "
                "Resume with exactly the same input; a new journal name is for a new send."
            )
        if write:
            self._do(lambda: self.client.delete(self.key("stop"), self.key("abort")))

    def entries(self) -> list[Entry]:
        """Every recipient recorded so far."""
        states: dict[str, str] = self._do(lambda: self.client.hgetall(self.key("states")))
        infos: dict[str, str] = self._do(lambda: self.client.hgetall(self.key("info")))
        entries = []
        for row, state in states.items():
            info = json.loads(infos.get(row) or "{}")
            entries.append(Entry(int(row), info.get("h"), info.get("r"), state, info.get("n")))
        return entries

    def plan(
        self,
        new: Iterable[tuple[int, str, dict[str, Any]]],
        final: Iterable[tuple[int, str, dict[str, Any]]],
    ) -> None:
        """Record the run's plan: ``new`` rows (pending, or in-flight to be looked up
        first) where the journal has none yet; ``final`` rows (failed, skipped) as given.
        Each item is ``(row, state, info)``."""

        def action() -> None:
            pipe = self.client.pipeline(transaction=False)
            for row, state, info in new:
                pipe.hsetnx(self.key("states"), str(row), state)
                pipe.hsetnx(self.key("info"), str(row), json.dumps(info))
                if state == IN_FLIGHT:
                    pipe.hsetnx(self.key("owners"), str(row), "")
            for row, state, info in final:
                pipe.hset(self.key("states"), str(row), state)
                pipe.hset(self.key("info"), str(row), json.dumps(info))
            pipe.execute()

        self._do(action)

    def states(self, rows: Sequence[int] | None = None) -> dict[int, str]:
        """The state of each of ``rows`` (of every row, when None)."""
        if rows is None:
            every: dict[str, str] = self._do(lambda: self.client.hgetall(self.key("states")))
            return {int(row): state for row, state in every.items()}
        if not rows:
            return {}
        values: list[str | None] = self._do(
            lambda: self.client.hmget(self.key("states"), [str(r) for r in rows])
        )
        return {row: value for row, value in zip(rows, values, strict=True) if value is not None}

    def info(self, rows: Sequence[int]) -> dict[int, dict[str, Any]]:
        """What the journal knows of each of ``rows`` besides its state."""
        if not rows:
            return {}
        values: list[str | None] = self._do(
            lambda: self.client.hmget(self.key("info"), [str(r) for r in rows])
        )
        return {row: json.loads(v) for row, v in zip(rows, values, strict=True) if v}

    def claimable(self, rows: Sequence[int]) -> list[int]:
        """Those of ``rows`` not final and not owned by a live run: to hand out again."""
        states = self.states(rows)
        open_rows = [r for r in rows if states.get(r) in (PENDING, IN_FLIGHT)]
        if not open_rows:
            return []
        owners: list[str | None] = self._do(
            lambda: self.client.hmget(self.key("owners"), [str(r) for r in open_rows])
        )
        out = []
        for row, owner in zip(open_rows, owners, strict=True):
            if owner and self._do(lambda o=owner: self.client.exists(self.key(f"lease:{o}"))):
                continue
            out.append(row)
        return out

    def count(self, name: str) -> int:
        """A counter of the run (``rate_limited``)."""
        value = self._do(lambda: self.client.hget(self.key("stats"), name))
        return int(value or 0)

    def put_chunk(self, chunk: str, emails: Sequence[tuple[int, str]]) -> None:
        """Keep the emails of one chunk (``(row, encoded email)``) for the worker that sends
        it; they are deleted when the chunk is done."""
        self._do(
            lambda: self.client.set(self.key(f"chunk:{chunk}"), json.dumps(emails), ex=CHUNK_TTL)
        )

    def chunks_done(self, chunks: Sequence[str]) -> set[str]:
        """Which of ``chunks`` a worker has finished."""
        if not chunks:
            return set()
        flags: list[int] = self._do(lambda: self.client.smismember(self.key("done"), list(chunks)))
        return {chunk for chunk, flag in zip(chunks, flags, strict=True) if flag}

    def stop(self) -> None:
        """Ask every worker to start no more sends of this run."""
        self._do(lambda: self.client.set(self.key("stop"), "1"))

    def aborted(self) -> dict[str, str] | None:
        """The error that stopped the run (``class`` and ``message``), if a worker set one."""
        value = self._do(lambda: self.client.get(self.key("abort")))
        return json.loads(value) if value else None

    # -- the workers ---------------------------------------------------------------------------

    def chunk(self, chunk: str) -> list[tuple[int, str]] | None:
        """The emails of one chunk; None once it is done (or expired)."""
        value = self._do(lambda: self.client.get(self.key(f"chunk:{chunk}")))
        return [(int(row), text) for row, text in json.loads(value)] if value else None

    def done(self, chunk: str) -> None:
        """The chunk is done: drop its emails, mark it."""

        def action() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.key(f"chunk:{chunk}"))
            pipe.sadd(self.key("done"), chunk)
            pipe.execute()

        self._do(action)

    def stopping(self) -> bool:
        """Whether the run was stopped or aborted: start no more sends."""
        flags = self._do(lambda: self.client.exists(self.key("stop"), self.key("abort")))
        return bool(flags)

    def abort(self, error_class: str, message: str) -> None:
        """Stop the run because of an error every other email would hit too."""
        document = json.dumps({"class": error_class, "message": message})
        self._do(lambda: self.client.set(self.key("abort"), document, nx=True))

    def lease(self, token: str, seconds: float) -> None:
        """Take (or renew) a run's lease: its rows in-flight are its own while it lasts."""
        self._do(
            lambda: self.client.set(self.key(f"lease:{token}"), "1", px=max(1, int(seconds * 1000)))
        )

    def release(self, token: str) -> None:
        """End a run's lease."""
        self._do(lambda: self.client.delete(self.key(f"lease:{token}")))

    def claim(self, row: int, token: str) -> str:
        """Claim ``row`` for the run ``token``: CLAIMED, IN_DOUBT, OWNED, a final state, or
        ``missing``."""
        result: str = self._do(
            lambda: self._claim(
                keys=[self.key("states"), self.key("owners")],
                args=[str(row), token, self.key("lease:")],
            )
        )
        return result

    def finish(self, row: int, token: str, state: str, info: dict[str, Any] | None) -> bool:
        """Record ``row``'s new state (and info) if the run ``token`` still owns it.
        IN_FLIGHT leaves it to be looked up first by the next claim; PENDING gives it back."""
        assert state in (PENDING, IN_FLIGHT, SENT, FAILED, SKIPPED)
        done: int = self._do(
            lambda: self._finish(
                keys=[self.key("states"), self.key("owners"), self.key("info")],
                args=[str(row), token, state, json.dumps(info) if info is not None else ""],
            )
        )
        return bool(done)

    def add(self, name: str, amount: int = 1) -> None:
        """Add to a counter of the run."""
        self._do(lambda: self.client.hincrby(self.key("stats"), name, amount))

    def tally(self) -> Counter[str]:
        """How many rows are in each state."""
        values: list[str] = self._do(lambda: self.client.hvals(self.key("states")))
        return Counter(values)
