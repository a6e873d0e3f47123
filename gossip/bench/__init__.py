"""The topology benchmark suite (``gossip bench topologies``): see ``docs/benchmarks.md``."""

from gossip.bench.consensus import contraction_rate, gossip_distances, measure_consensus
from gossip.bench.cost_model import out_degrees, peer_finish_times, round_times, send_times
from gossip.bench.runner import run_suite, run_topology_bench
from gossip.bench.suite import FULL, QUICK, NetworkSpec, SuiteConfig, TaskSpec, load_suite

__all__ = [
    "FULL",
    "QUICK",
    "NetworkSpec",
    "SuiteConfig",
    "TaskSpec",
    "contraction_rate",
    "gossip_distances",
    "load_suite",
    "measure_consensus",
    "out_degrees",
    "peer_finish_times",
    "round_times",
    "run_suite",
    "run_topology_bench",
    "send_times",
]
