"""The event simulator's model of time: per-peer compute speeds, link delays, drops.

Pure numpy and deterministic from the seed: the same seed gives the same slow peers, the
same random stragglers and the same lost messages. No JAX here; the engine
(:mod:`gossip.sim.events`) asks it when things happen.

- A local step of peer i takes ``step_time * speed[i]`` seconds. ``slow_peers`` peers (chosen
  by the seed) are ``slowdown`` times slower; ``stragglers`` (a fraction) of the others are
  slower by a factor drawn uniformly from ``STRAGGLER_RANGE``.
- A message of ``nbytes`` takes ``latency + 8 * nbytes / (bandwidth * 1e6)`` seconds on any
  link (``bandwidth`` in Mbit/s, 0: unlimited). Links do not contend: each message has its
  link to itself.
- Each message is lost with probability ``drop``, independently.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gossip.errors import ConfigError

STRAGGLER_RANGE = (2.0, 8.0)
"""Random stragglers are this many times slower (uniform)."""
_DROP_SALT = 0x5EED


@dataclasses.dataclass(frozen=True)
class TimeModel:
    """When things happen in an event simulation.

    Attributes:
        step_time: seconds of one local step of a peer at speed 1.
        speed: (N,) float64 factor on ``step_time`` per peer (>= 1).
        latency: seconds every message spends on its link.
        bandwidth: Mbit/s of every link (0: unlimited).
        drop: probability that a message is lost, in [0, 1).
        seed: the run seed (the drop draws).
    """

    step_time: float
    speed: np.ndarray
    latency: float = 0.0
    bandwidth: float = 0.0
    drop: float = 0.0
    seed: int = 0

    def step_seconds(self) -> np.ndarray:
        """(N,) seconds of one local step of each peer."""
        return self.step_time * self.speed

    def delay(self, nbytes: int) -> float:
        """Seconds a message of ``nbytes`` takes from sender to receiver."""
        wire = 8.0 * nbytes / (self.bandwidth * 1e6) if self.bandwidth > 0 else 0.0
        return self.latency + wire

    def drops(self, key: int) -> np.random.Generator:
        """The generator of lost messages for one stream of sends (e.g. one round)."""
        return np.random.default_rng([self.seed, _DROP_SALT, key])


def peer_speeds(n: int, seed: int, slow_peers: int = 0, slowdown: float = 1.0,
                stragglers: float = 0.0) -> np.ndarray:
    """Each peer's factor on the base step time.

    Args:
        n: number of peers.
        seed: run seed (which peers are slow).
        slow_peers: K peers, chosen by the seed, are ``slowdown`` times slower.
        slowdown: the factor of the slow peers (>= 1).
        stragglers: a fraction in [0, 1] of the other peers, chosen by the seed, each slower
            by a factor uniform in ``STRAGGLER_RANGE``.

    Returns:
        (N,) float64 factors, 1 for a peer at full speed.

    Raises:
        ConfigError: a value out of range.
    """
    if not 0 <= slow_peers <= n:
        raise ConfigError(f"slow_peers must be in [0, peers={n}], got {slow_peers}")
    if not slowdown >= 1:
        raise ConfigError(f"slowdown must be >= 1 (a factor on the compute time), got "
                          f"{slowdown}")
    if not 0 <= stragglers <= 1:
        raise ConfigError(f"stragglers must be a fraction in [0, 1], got {stragglers}")
    rng = np.random.default_rng([seed, 0x51])
    order = rng.permutation(n)
    speed = np.ones(n)
    speed[order[:slow_peers]] = slowdown
    rest = order[slow_peers:]
    count = int(round(stragglers * len(rest)))
    speed[rest[:count]] = rng.uniform(*STRAGGLER_RANGE, size=count)
    return speed
