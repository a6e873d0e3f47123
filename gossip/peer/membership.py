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

A round a peer *claims* (hello, heartbeat, state request, state) is believed only if it is
possible: at most the run's number of rounds, and, once this peer has timed a round of its
own, at most ``limit()``: the round this peer started from (or caught up to) plus the rounds
that fit since then at ``speedup`` times this peer's fastest round, plus a slack of
``2 * catchup_after + 2`` rounds. A claim above that is refused (counted by the inbox);
it neither moves the peer's known round nor shows it alive. A neighbour that was asked for
its state because of its claim and gave no usable answer is never asked again
(``no_answer``): a false claim costs at most one short wait, once.

Pure bookkeeping with an injectable clock; the inbox calls it under its lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

SPEEDUP = 10.0  # how much faster than our fastest round another peer's rounds may be


class Membership:
    """Liveness and rounds of the other peers, as seen by one peer.

    Args:
        timeout: seconds of silence after which a peer is presumed dead.
        catchup_after: how many rounds behind a peer must be to count as lagging.
        clock: seconds, monotonic (injectable for tests).
        rounds: the run's number of rounds (no claim may exceed it); None: unbounded.
        speedup: how many times faster than this peer's fastest round another peer may run.
    """

    def __init__(self, timeout: float, catchup_after: int,
                 clock: Callable[[], float] = time.monotonic, rounds: int | None = None,
                 speedup: float = SPEEDUP) -> None:
        self.timeout = timeout
        self.catchup_after = catchup_after
        self.clock = clock
        self.total_rounds = rounds
        self.speedup = speedup
        self.last_seen: dict[int, float] = {}
        self.rounds: dict[int, int] = {}
        self.behind: dict[int, int] = {}  # our round minus theirs when they last told us
        self.gone: set[int] = set()
        self.unanswered: set[int] = set()  # asked for state once, gave nothing usable
        self.fastest: float | None = None  # seconds of our fastest round so far
        self.anchor: tuple[int, float] = (0, clock())  # (our round, when we started it)

    # -- what is possible ---------------------------------------------------------------------

    def start(self, round_: int) -> None:
        """Records that this peer starts (or, after catching up, continues at) ``round_``."""
        self.anchor = (round_, self.clock())

    def ran(self, seconds: float) -> None:
        """Records that one of this peer's rounds took ``seconds``."""
        if seconds > 0 and (self.fastest is None or seconds < self.fastest):
            self.fastest = seconds

    def limit(self) -> float:
        """The highest round any peer can be in now (infinite until a round was timed)."""
        cap = float("inf") if self.total_rounds is None else float(self.total_rounds)
        if self.fastest is None:
            return cap
        start, since = self.anchor
        possible = (start + (self.clock() - since) * self.speedup / self.fastest
                    + 2 * self.catchup_after + 2)
        return min(cap, possible)

    def plausible(self, round_: int) -> bool:
        """Whether a peer can be in ``round_`` now (see the module docstring)."""
        return round_ <= self.limit()

    def no_answer(self, peer: int) -> None:
        """``peer`` was asked for its state and sent nothing usable: never ask it again."""
        self.unanswered.add(peer)

    # -- what was heard -----------------------------------------------------------------------

    def seen(self, peer: int) -> None:
        """Records a valid message from ``peer`` that says nothing about its round."""
        self.last_seen[peer] = self.clock()
        self.gone.discard(peer)

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
        that a peer in ``round_`` should catch up from it, and was never asked in vain;
        else None."""
        ahead = [(self.rounds[j], -j) for j in peers
                 if self.alive(j) and j not in self.unanswered
                 and self.rounds.get(j, -1) >= round_ + self.catchup_after]
        return -max(ahead)[1] if ahead else None

    def isolated(self, peers: Iterable[int]) -> bool:
        """None of ``peers`` is alive, and at least one was heard and then went silent
        (not: all said bye, or none was ever heard)."""
        peers = list(peers)
        return (not any(self.alive(j) for j in peers)
                and any(j in self.last_seen and j not in self.gone for j in peers))
