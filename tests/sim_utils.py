"""The simulators as several test files drive them: ``gossip sim`` on the command line, and
the event engine averaging without training."""

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gossip.cli import main
from gossip.rules import running_push_sum
from gossip.sim.events import make_event_engine
from gossip.sim.simulator import PeerData, SimState
from gossip.topology import make_topology

# A small, fast run: 4 peers, 4 rounds, a 16-unit MLP, no progress bar or plot.
SMALL = ["--peers", "4", "--rounds", "4", "--eval-every", "2", "--no-progress", "--no-plot",
         "--set", "model_options={hidden=[16]}"]


def assert_sim_refuses(out: Path, capsys: pytest.CaptureFixture, argv: list[str],
                       names: list[str]) -> None:
    """``gossip sim`` (the SMALL run into ``out``) with ``argv`` exits 2 with one
    ``gossip: error:`` line that names each of ``names``, and writes nothing."""
    assert main(["sim", *SMALL, "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gossip: error: "), err
    for name in names:
        assert name in err, err
    assert not out.exists()


class Averaging(NamedTuple):
    """An event engine whose peers only average (running-sum push-sum, no training)."""

    engine: Any
    state: SimState
    data: PeerData
    graph: Any  # the exponential graph's round graph, static
    want: np.ndarray  # (3,): the exact average of the initial values
    scale: float  # the largest initial |value|: the tolerance's unit


def averaging(n: int, seed: int) -> Averaging:
    """``n`` peers on the exponential graph, each holding 3 values drawn from ``seed``."""
    graph = make_topology("exponential", n, weights="push").round_graph(0)
    rule = running_push_sum(1, slots=graph.neighbours.shape[1])
    zero = lambda p, x, y: 0.0 * jnp.sum(p["x"])  # noqa: E731 (no training)
    engine = make_event_engine(zero, optax.sgd(0.1), rule, batch_size=1)
    x0 = {"x": jax.random.normal(jax.random.key(seed), (n, 3)) * 10}
    want, scale = np.asarray(x0["x"]).mean(0), float(np.abs(np.asarray(x0["x"])).max())
    state = SimState(x0, jax.vmap(optax.sgd(0.1).init)(x0), jax.vmap(rule.init)(x0),
                     jnp.zeros((), jnp.int32))
    data = PeerData(jnp.zeros((n, 1, 1)), jnp.zeros((n, 1)), jnp.ones((n,), jnp.int32))
    return Averaging(engine, state, data, graph, want, scale)
