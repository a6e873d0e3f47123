"""Churn in the event simulator: when peers leave and come back.

Pure numpy and deterministic from the seed, like :mod:`gossip.sim.timing`. A peer is *away*
during half-open intervals ``[leave, back)`` of simulated seconds, from two sources:

- a random process, ``rate`` > 0: every peer alternates up and away; its up times are
  exponential with mean ``1 / rate`` seconds (``rate`` departures per peer per simulated
  second of up time) and its away times exponential with mean ``downtime`` seconds. Each
  peer draws from its own stream (``seed``, peer), generated lazily as the clock advances,
  so the schedule does not depend on how long the run lasts;
- an explicit schedule, ``[[peer, leave_s, back_s], ...]``, for tests and for replaying a
  given outage.

Both may be given; a peer's intervals are then merged. The engine
(:mod:`gossip.sim.events`) asks :meth:`Churn.overlap` whether a peer was away during a
piece of its work, and :meth:`Churn.away` whether it is away at an instant.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from gossip.config import check_churn

_CHURN_SALT = 0xC4A2


class Churn:
    """Every peer's away intervals, generated as far as they are asked for.

    Args:
        n: number of peers.
        seed: run seed (the random departures).
        rate: mean departures per peer per simulated second of up time (0: none at random).
        downtime: mean seconds a random departure lasts (> 0 when ``rate`` > 0).
        schedule: explicit ``(peer, leave_s, back_s)`` triples, ``0 <= leave_s < back_s``.

    Raises:
        ConfigError: a value out of range or a malformed schedule entry.
    """

    def __init__(self, n: int, seed: int = 0, rate: float = 0.0, downtime: float = 1.0,
                 schedule: Sequence[Sequence[float]] = ()) -> None:
        self.n, self.rate, self.downtime = n, rate, downtime
        check_churn(n, rate, downtime, schedule)
        self._fixed: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        for peer, leave, back in schedule:
            self._fixed[int(peer)].append((float(leave), float(back)))
        self._random: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self._rngs = [np.random.default_rng([seed, _CHURN_SALT, i]) for i in range(n)]
        self._horizon = np.zeros(n)  # random intervals are known up to here (an up time)
        self._merged: list[list[tuple[float, float]]] = [_merge(f) for f in self._fixed]
        self._starts = [[a for a, _ in m] for m in self._merged]

    @property
    def active(self) -> bool:
        """Whether any peer ever leaves."""
        return self.rate > 0 or any(self._fixed)

    def _extend(self, peer: int, until: float) -> None:
        if self.rate <= 0 or self._horizon[peer] > until:
            return
        rng, out, t = self._rngs[peer], self._random[peer], self._horizon[peer]
        while t <= until:
            leave = t + rng.exponential(1.0 / self.rate)
            back = leave + rng.exponential(self.downtime)
            out.append((leave, back))
            t = back
        self._horizon[peer] = t
        self._merged[peer] = _merge(self._fixed[peer] + out)
        self._starts[peer] = [a for a, _ in self._merged[peer]]

    def overlap(self, peer: int, start: float, end: float) -> tuple[float, float] | None:
        """The first away interval of ``peer`` that meets ``[start, end]``, or None.

        An interval ``[leave, back)`` meets it when ``leave <= end`` and ``back > start``.
        """
        self._extend(peer, end)
        merged = self._merged[peer]
        k = bisect.bisect_right(self._starts[peer], end)  # intervals with leave <= end
        if k == 0 or merged[k - 1][1] <= start:
            return None
        # Disjoint and sorted, so their backs increase too: walk back to the first that
        # still ends after ``start``.
        while k > 1 and merged[k - 2][1] > start:
            k -= 1
        return merged[k - 1]

    def away(self, peer: int, at: float) -> bool:
        """Whether ``peer`` is away at instant ``at``."""
        hit = self.overlap(peer, at, at)
        return hit is not None and hit[0] <= at < hit[1]


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for leave, back in sorted(intervals):
        if out and leave <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], back))
        else:
            out.append((leave, back))
    return out
