"""How many connections (sockets and event streams) each user has open, against a cap.

Every session takes a slot for its user before it joins anything and gives it back when it
leaves (collab.session). Without Redis the count is this process's, which is all there is.
With Redis (settings.REDIS_URL) it is every process's: a sorted set per user in Redis, one
member per session, scored with the time it expires. Admission is one script run in Redis
(drop the expired members, count, add if under the cap), so two processes cannot both take
the last slot. Each process renews its members' expiry every RENEW_SECONDS, so the slots of a
process that died (SIGKILL, a lost host) expire within TTL_SECONDS; the times are Redis's own
clock, so the processes' clocks need not agree.

When Redis cannot be reached, a session is admitted by this process's count alone (an outage
must not lock everyone out), and for OUTAGE_SECONDS after a failure new sessions do not wait
for Redis at all; their slots are written to Redis at the next renewal that works.
"""

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("tandem.connections")

UNREACHABLE = (RedisError, OSError, TimeoutError)

TTL_SECONDS = 30
RENEW_SECONDS = 10
KEY = "tandem:connections:{}"
# Redis calls at once from one process: a thousand sockets reconnecting together wait their
# turn for a connection instead of opening a thousand.
REDIS_CONNECTIONS = 8
REDIS_TIMEOUT_SECONDS = 2
OUTAGE_SECONDS = 5

# KEYS[1]: the user's set. ARGV: member, cap, ttl (ms). 1 if admitted, else 0.
ADMIT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the users' sets; ARGV: ttl (ms), then for each key a count n and its n members.
RENEW = """
local t = redis.call('TIME')
local expires = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
local at = 2
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  for j = 1, n do
    redis.call('ZADD', key, expires, ARGV[at + j])
  end
  redis.call('PEXPIRE', key, ARGV[1])
  at = at + n + 1
end
return 0
"""


class ConnectionCounts:
    """The slots of this process's sessions; one per process (hubs.Registry owns it)."""

    def __init__(self, origin, redis_url=""):
        self.origin = origin  # names this process's members in Redis
        self.redis_url = redis_url
        self.local = {}  # user id -> session ids holding a slot in this process
        self.returned = []  # (user id, session) given back, not yet removed from Redis
        self._redis = None
        self._admit = self._renew = None
        self._task = None
        self._wake = asyncio.Event()
        self._down_until = float("-inf")  # loop time until which Redis is not asked

    def held(self, user_id):
        """Slots this process holds for the user."""
        return len(self.local.get(user_id, ()))

    async def take(self, user_id, session, cap):
        """A slot for the session if the user has fewer than `cap`; False when refused."""
        mine = self.local.setdefault(user_id, set())
        admitted = len(mine) < cap
        loop = asyncio.get_running_loop()
        if admitted and self.redis_url and loop.time() >= self._down_until:
            self._start()
            try:
                key, member = KEY.format(user_id), self._member(session)
                admitted = bool(
                    await self._admit(keys=[key], args=[member, cap, TTL_SECONDS * 1000])
                )
            except UNREACHABLE as error:
                log.warning("connection count unavailable, this process's only: %s", error)
                self._down_until = loop.time() + OUTAGE_SECONDS
            if asyncio.current_task().cancelling():
                if not mine:
                    del self.local[user_id]
                raise asyncio.CancelledError()  # see _unless_cancelled
        if admitted:
            mine.add(session)
        elif not mine:
            del self.local[user_id]
        return admitted

    def give_back(self, user_id, session):
        """The session left: its slot is free (in Redis as soon as the next call goes)."""
        mine = self.local.get(user_id)
        if mine is None or session not in mine:
            return
        mine.discard(session)
        if not mine:
            del self.local[user_id]
        if self.redis_url:
            self.returned.append((user_id, session))
            self._wake.set()

    async def stop(self):
        """Give every slot back (the process or its test is ending)."""
        if self._task is not None:
            self._task.cancel()
        if self._redis is None:
            return
        for user_id, sessions in self.local.items():
            self.returned.extend((user_id, session) for session in sessions)
        self.local = {}
        try:
            await self._flush()
        except UNREACHABLE:
            pass  # they expire on their own
        await self._redis.aclose()

    def _member(self, session):
        return f"{self.origin}:{session}"

    def _start(self):
        if self._redis is not None:
            return
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._admit = self._redis.register_script(ADMIT)
        self._renew = self._redis.register_script(RENEW)
        self._task = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self):
        """Remove returned slots promptly and renew the held ones every RENEW_SECONDS."""
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + RENEW_SECONDS
        while True:
            try:
                async with asyncio.timeout(max(0, renew_at - loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._flush()
                if loop.time() >= renew_at:
                    renew_at = loop.time() + RENEW_SECONDS
                    await self._renew_all()
                    self._down_until = float("-inf")
            except UNREACHABLE as error:
                _unless_cancelled()
                log.warning("connection counts not written to Redis: %s", error)
                await asyncio.sleep(1)
            _unless_cancelled()

    async def _flush(self):
        returned, self.returned = self.returned, []
        if not returned:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id, session in returned:
                    pipe.zrem(KEY.format(user_id), self._member(session))
                await pipe.execute()
        except BaseException:
            self.returned[:0] = returned  # tried again on the next round
            raise

    async def _renew_all(self):
        if not self.local:
            return
        keys, args = [], [TTL_SECONDS * 1000]
        for user_id, sessions in self.local.items():
            keys.append(KEY.format(user_id))
            args.append(len(sessions))
            args.extend(self._member(session) for session in sessions)
        await self._renew(keys=keys, args=args)


def _unless_cancelled():
    """Raise CancelledError if this task was cancelled during a Redis call.

    redis-py 8.2 swallows a cancellation that lands in the middle of a call (78 of 100 tries
    at random moments went on running) or turns it into a connection error; a stopped
    process that went on renewing its slots would hold them for good."""
    if asyncio.current_task().cancelling():
        raise asyncio.CancelledError()
