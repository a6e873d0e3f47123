"""What a peer knows of the others: who is alive, who has left, and which round each is in.

Every valid message from a peer (hello, heartbeat, gossip, state) shows it alive; a peer
not heard from for ``timeout`` seconds is presumed dead until it is heard again. Hello and
heartbeat messages carry the sender's current round, gossip messages the round they belong
to, so a peer knows roughly where each neighbour is. From that:

- a round waits only for neighbours that are alive, have not said bye, are not lagging and
  have not moved on: a dead, lagging or departed neighbour never stalls a round. A peer is
  *lagging* when, as it last told us its round, it was ``catchup_after`` rounds or more
  behind the round we were in then (what we know of a peer's round is a lower bound that
  ages between heartbeats, so "behind" is judged when it is said, not later); it has *moved
  on* when its known round is two or more past ours (it finished the round after this one
  without us, so this round's message was sent long ago);
- a peer whose freshest neighbour is known to be ``catchup_after`` rounds or more ahead is
  lagging itself, and catches up by taking that neighbour's parameters and round.

Pure bookkeeping with an injectable clock; the inbox calls it under its lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class Membership:
    """Liveness and rounds of the other peers, as seen by one peer.

    Args:
        timeout: seconds of silence after which a peer is presumed dead.
        catchup_after: how many rounds behind a peer must be to count as lagging.
        clock: seconds, monotonic (injectable for tests).
    """

    def __init__(self, timeout: float, catchup_after: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.catchup_after = catchup_after
        self.clock = clock
        self.last_seen: dict[int, float] = {}
        self.rounds: dict[int, int] = {}
        self.behind: dict[int, int] = {}  # our round minus theirs when they last told us
        self.gone: set[int] = set()

    def heard(self, peer: int, round_: int, current: bool, at: int) -> None:
        """Records a valid message from ``peer``.

        Args:
            peer: the sender.
            round_: the round the message carries.
            current: the round is the sender's current one (hello, heartbeat, state
                request), which may be lower than before (a peer restarted from a
                checkpoint); otherwise (gossip, state) it only moves the known round forward.
            at: the round this peer is in now.
        """
        self.last_seen[peer] = self.clock()
        self.gone.discard(peer)
        known = self.rounds.get(peer)
        new = round_ if current or known is None else max(known, round_)
        if current or new != known:  # an old gossip message says nothing new
            self.behind[peer] = at - new
        self.rounds[peer] = new

    def left(self, peer: int) -> None:
        """Records a bye: ``peer`` finished its run."""
        self.gone.add(peer)

    def alive(self, peer: int) -> bool:
        """``peer`` has been heard within ``timeout`` seconds and has not said bye."""
        seen = self.last_seen.get(peer)
        return (seen is not None and peer not in self.gone
                and self.clock() - seen <= self.timeout)

    def lagging(self, peer: int) -> bool:
        """``peer`` was ``catchup_after`` rounds or more behind us when it last told us."""
        return self.behind.get(peer, 0) >= self.catchup_after

    def waitable(self, peer: int, round_: int) -> bool:
        """Whether round ``round_`` should wait for ``peer``'s message."""
        return (self.alive(peer) and not self.lagging(peer)
                and self.rounds.get(peer, round_) < round_ + 2)

    def leader(self, peers: Iterable[int], round_: int) -> int | None:
        """The live peer of ``peers`` furthest ahead, if it is far enough ahead of ``round_``
        that a peer in ``round_`` should catch up from it; else None."""
        ahead = [(self.rounds[j], -j) for j in peers
                 if self.alive(j) and self.rounds.get(j, -1) >= round_ + self.catchup_after]
        return -max(ahead)[1] if ahead else None

    def isolated(self, peers: Iterable[int]) -> bool:
        """None of ``peers`` is alive, and at least one was heard and then went silent
        (not: all said bye, or none was ever heard)."""
        peers = list(peers)
        return (not any(self.alive(j) for j in peers)
                and any(j in self.last_seen and j not in self.gone for j in peers))
