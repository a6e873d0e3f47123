"""Per-sender rate limits: token buckets that a flooding neighbour empties for itself only.

The protocol bounds what an honest peer sends to a neighbour: one gossip message per round
(up to ``max_ahead`` rounds early), a heartbeat every ``heartbeat_interval`` seconds, a
hello, a bye, a state request and a state answer now and then. Each sender has a bucket of
``burst`` tokens, refilled by ``rate`` tokens a second and by ``per_round`` tokens each time
the receiver moves on a round; each message takes one token, and a message that finds the
bucket empty is dropped before its payload is looked at (the inbox counts it in
``messages_throttled``). The limits are a few times what an honest peer needs, so honest
traffic is never throttled; a flood costs the receiver at most that much work per sender.

Pure bookkeeping with an injectable clock; the inbox calls it under its lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Token buckets, one per sender.

    Args:
        rate: tokens added per second.
        burst: the most tokens a bucket holds (also its start).
        per_round: tokens added each time the receiver moves on a round (``new_round``).
        clock: seconds, monotonic (injectable for tests).
    """

    def __init__(self, rate: float, burst: float, per_round: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.per_round, self.clock = rate, burst, per_round, clock
        self.rounds = 0
        self._buckets: dict[int, tuple[float, float, int]] = {}  # tokens, time, rounds

    def new_round(self) -> None:
        """The receiver moved on a round: every bucket gains ``per_round`` tokens."""
        self.rounds += 1

    def allow(self, sender: int) -> bool:
        """Takes a token from ``sender``'s bucket; False (and nothing taken) if it is empty."""
        now = self.clock()
        tokens, then, rounds = self._buckets.get(sender, (self.burst, now, self.rounds))
        tokens = min(self.burst, tokens + (now - then) * self.rate
                     + (self.rounds - rounds) * self.per_round)
        allowed = tokens >= 1.0
        self._buckets[sender] = (tokens - 1.0 if allowed else tokens, now, self.rounds)
        return allowed
