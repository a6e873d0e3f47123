"""The topology benchmark suite's configuration: dataclasses, presets and TOML loading.

A suite is a grid: every topology × number of peers × task × data split × seed is one
simulated run with the same hyper-parameters (those of its task). ``QUICK`` and ``FULL`` are
the presets; a TOML file overrides any of their keys (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Any

from gossip.config import Config, load_toml
from gossip.errors import ConfigError, check_int, check_type, unknown
from gossip.topology import TOPOLOGIES, make_topology

PARTITIONS = ("iid", "dirichlet")
TARGET_METRICS = ("local_acc_mean", "avg_model_acc")
# edge_list needs a file and is not a topology family: it is not benchmarked.
BENCH_TOPOLOGIES = tuple(name for name in TOPOLOGIES if name != "edge_list")


_RUN = Config()


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One learning task: a name and the ``Config`` keys every topology shares (``TASK_KEYS``).

    The keys mean what they mean in a run config, with its defaults (``docs/config.md``),
    except ``rounds`` and ``eval_every``: the suite's runs are shorter and evaluated more often.
    """

    name: str
    dataset: str = _RUN.dataset
    model: str = _RUN.model
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = _RUN.optimizer
    lr: float = _RUN.lr
    batch_size: int = _RUN.batch_size
    rounds: int = 200
    eval_every: int = 10

    def config(self, **keys: Any) -> Config:
        """The run config of this task, the other keys (peers, topology, seed ...) from ``keys``."""
        return Config(**{k: copy.deepcopy(getattr(self, k)) for k in TASK_KEYS}, **keys)


TASK_KEYS = tuple(f.name for f in dataclasses.fields(TaskSpec) if f.name != "name")
"""The ``Config`` keys a task sets."""


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A network for the cost model: per-link latency (s) and per-peer bandwidth (bit/s)."""

    name: str
    latency_s: float
    bandwidth_bit_s: float


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """The whole suite (every key is documented in ``docs/benchmarks.md``)."""

    topologies: tuple[str, ...]
    peers: tuple[int, ...]
    tasks: tuple[TaskSpec, ...]
    partitions: tuple[str, ...] = PARTITIONS
    alpha: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2)
    local_steps: int = 1
    target_fraction: float = 0.8
    target_reach: float = 0.6
    target_metric: str = "local_acc_mean"
    epidemic_s: int | str = "auto"
    networks: tuple[NetworkSpec, ...] = ()
    consensus_rounds: int = 300
    consensus_dim: int = 32

    def to_dict(self) -> dict[str, Any]:
        """The suite as plain JSON/TOML-serialisable data."""
        return dataclasses.asdict(self)


DATACENTRE = NetworkSpec("datacentre", latency_s=50e-6, bandwidth_bit_s=10e9)
WAN = NetworkSpec("wan", latency_s=50e-3, bandwidth_bit_s=100e6)
ALL_TOPOLOGIES = ("ring", "torus", "exponential", "one_peer_exponential", "random_matching",
                  "epidemic", "complete", "star")
TASKS = {
    "mlp_digits": TaskSpec("mlp_digits", "digits", "mlp", rounds=200, eval_every=5),
    "cnn_mnist1d": TaskSpec("cnn_mnist1d", "mnist1d", "cnn1d",
                            model_options={"channels": [8, 16], "hidden": 32},
                            batch_size=16, rounds=300, eval_every=10),
}

FULL = SuiteConfig(topologies=ALL_TOPOLOGIES, peers=(16, 64),
                   tasks=(TASKS["mlp_digits"], TASKS["cnn_mnist1d"]),
                   networks=(DATACENTRE, WAN))
QUICK = dataclasses.replace(
    FULL, peers=(16,), seeds=(0,),
    tasks=(dataclasses.replace(TASKS["mlp_digits"], rounds=80, eval_every=5),),
    consensus_rounds=200)


def _tuple_of(key: str, value: Any, kind: type | tuple[type, ...]) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"suite key {key!r} must be a non-empty list, got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, kind):
            raise ConfigError(f"suite key {key!r}: bad entry {item!r}")
    return tuple(value)


def _table(owner: str, cls: type, value: Any, base: Any = None) -> Any:
    """A dataclass from a TOML table, over ``base`` (or the class defaults)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{owner} must be a table, got {value!r}")
    hints = typing.get_type_hints(cls)
    for key in value:
        if key not in hints:
            raise ConfigError(f"unknown key {key!r} in {owner}; valid keys: {', '.join(hints)}")
    merged = {**(dataclasses.asdict(base) if base else {}), **value}
    for key, v in merged.items():
        merged[key] = check_type(f"{owner}: key {key!r}", v,
                                 typing.get_origin(hints[key]) or hints[key])
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in merged
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{owner} misses key(s): {', '.join(missing)}")
    return cls(**merged)


def _task(value: Any, i: int) -> TaskSpec:
    if isinstance(value, str):
        if value not in TASKS:
            raise unknown("task", value, TASKS)
        return TASKS[value]
    base = TASKS.get(value.get("name")) if isinstance(value, dict) else None
    task = _table(f"tasks[{i}]", TaskSpec, value, base)
    for key in ("rounds", "eval_every", "batch_size"):
        check_int(f"tasks[{i}].{key}", getattr(task, key), 1)
    if not task.lr > 0:
        raise ConfigError(f"tasks[{i}].lr must be > 0, got {task.lr}")
    return task


def _network(value: Any, i: int) -> NetworkSpec:
    net = _table(f"networks[{i}]", NetworkSpec, value)
    if not (net.latency_s >= 0 and net.bandwidth_bit_s > 0):
        raise ConfigError(f"networks[{i}] needs latency_s >= 0 and bandwidth_bit_s > 0")
    return net


def suite_from_dict(values: dict[str, Any], base: SuiteConfig) -> SuiteConfig:
    """Overrides ``base`` with the keys of a TOML document, then validates the suite.

    Raises:
        ConfigError: unknown key, wrong type, unknown topology/partition/metric, bad n.
    """
    fields = {f.name for f in dataclasses.fields(SuiteConfig)}
    for key in values:
        if key not in fields:
            raise ConfigError(f"unknown suite key {key!r}; valid keys: {', '.join(sorted(fields))}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("topologies", "partitions"):
            out[key] = _tuple_of(key, value, str)
        elif key in ("peers", "seeds"):
            out[key] = _tuple_of(key, value, int)
        elif key == "tasks":
            out[key] = tuple(_task(v, i) for i, v in enumerate(_tuple_of(key, value, (str, dict))))
        elif key == "networks":
            out[key] = tuple(_network(v, i) for i, v in enumerate(_tuple_of(key, value, dict)))
        elif key in ("alpha", "target_fraction", "target_reach"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"suite key {key!r} must be a number, got {value!r}")
            out[key] = float(value)
        else:
            out[key] = value
    return validate(dataclasses.replace(base, **out))


def validate(suite: SuiteConfig) -> SuiteConfig:
    """Checks every name and number of a suite; builds each topology once per n.

    Raises:
        ConfigError: the first problem found, in one line.
    """
    for name in suite.topologies:
        if name not in BENCH_TOPOLOGIES:
            raise unknown("topology", name, BENCH_TOPOLOGIES)
    for name in suite.partitions:
        if name not in PARTITIONS:
            raise unknown("partition", name, PARTITIONS)
    if suite.target_metric not in TARGET_METRICS:
        raise unknown("target_metric", suite.target_metric, TARGET_METRICS)
    for n in suite.peers:
        check_int("n (peers)", n, 2)
    for seed in suite.seeds:
        check_int("seed", seed, 0)
    check_int("local_steps", suite.local_steps, 1)
    check_int("consensus_rounds", suite.consensus_rounds, 2)
    check_int("consensus_dim", suite.consensus_dim, 1)
    if suite.epidemic_s != "auto":
        check_int("epidemic_s", suite.epidemic_s, 1)
    if not 0 < suite.target_fraction <= 1:
        raise ConfigError(f"target_fraction must be in (0, 1], got {suite.target_fraction}")
    if not 0 <= suite.target_reach <= 1:
        raise ConfigError(f"target_reach must be in [0, 1], got {suite.target_reach}")
    if not suite.alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {suite.alpha}")
    if not suite.networks:
        raise ConfigError("the suite needs at least one network")
    if len({t.name for t in suite.tasks}) != len(suite.tasks) or not suite.tasks:
        raise ConfigError("the suite needs at least one task, with distinct names")
    for n in suite.peers:
        for name in suite.topologies:
            make_topology(name, n, **topology_options(suite, name, n))
    return suite


def topology_options(suite: SuiteConfig, name: str, n: int) -> dict[str, Any]:
    """Options of a topology in the suite: epidemic's s matches the exponential graph's
    out-degree (same bytes per round) when ``epidemic_s = "auto"``."""
    if name != "epidemic":
        return {}
    if suite.epidemic_s == "auto":
        return {"s": exponential_out_degree(n)}
    return {"s": int(suite.epidemic_s)}


def exponential_out_degree(n: int) -> int:
    """Messages each peer sends per round in the static exponential graph of n peers."""
    return len({2**e % n for e in range((n - 1).bit_length())} - {0})


def load_suite(path: str | Path | None, quick: bool) -> SuiteConfig:
    """The suite: the QUICK or FULL preset, overridden by the TOML file at ``path``.

    Raises:
        ConfigError: a missing/bad file or any invalid key or value.
    """
    base = QUICK if quick else FULL
    return suite_from_dict(load_toml(path) if path else {}, base)
