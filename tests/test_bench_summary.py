"""Targets, to-target figures and winners of the benchmark suite, on hand-made runs."""

import math

import pytest

from gossip.bench.ranking import rank_correlation, summarise, targets, winners


def run(topology, seed, acc, per_round_bytes, partition="iid"):
    rounds = [5 * (i + 1) for i in range(len(acc))]
    return {"task": "t", "n": 4, "partition": partition, "topology": topology, "seed": seed,
            "weights": "uniform", "round": rounds, "local_acc_mean": acc,
            "avg_model_acc": acc, "consensus_distance": [1.0] * len(acc),
            "bytes_per_peer": [r * per_round_bytes for r in rounds],
            "bytes_busiest_peer": [r * per_round_bytes for r in rounds],
            "time_s": {"net": [r * 0.1 for r in rounds]}}


RUNS = [run("complete", 0, [0.5, 0.9, 1.0], 30), run("complete", 1, [0.6, 0.95, 0.98], 30),
        run("ring", 0, [0.3, 0.5, 0.9], 20), run("ring", 1, [0.2, 0.85, 0.9], 20),
        run("star", 0, [0.1, 0.2, 0.3], 10), run("star", 1, [0.1, 0.2, 0.9], 10)]


def test_target_is_a_fraction_of_the_complete_graphs_final_mean():
    (t,) = targets(RUNS, "local_acc_mean", 0.8)
    assert t["reference_topology"] == "complete" and t["reference"] == pytest.approx(0.99)
    assert t["target"] == pytest.approx(0.792)
    (t,) = targets([r for r in RUNS if r["topology"] != "complete"], "local_acc_mean", 0.5)
    assert t["reference_topology"] == "ring" and t["target"] == pytest.approx(0.45)


def test_target_is_lowered_until_enough_topologies_reach_it():
    # worst-seed finals: complete 0.98, ring 0.9, star 0.3; 0.8 x 0.99 = 0.792
    (t,) = targets(RUNS, "local_acc_mean", 0.8, reach=0.6)  # 2 of 3 already reach it
    assert not t["lowered"] and t["target"] == pytest.approx(0.792)
    (t,) = targets(RUNS, "local_acc_mean", 0.95, reach=0.6)  # 0.9405: only complete
    assert t["lowered"] and t["target"] == pytest.approx(0.9)
    assert t["fraction_target"] == pytest.approx(0.9405)
    (t,) = targets(RUNS, "local_acc_mean", 0.95, reach=1.0)
    assert t["target"] == pytest.approx(0.3)


def test_summary_and_winners():
    rows = {r["topology"]: r for r in summarise(RUNS, targets(RUNS, "local_acc_mean", 0.8),
                                                "local_acc_mean")}
    assert rows["complete"]["rounds_to_target"]["mean"] == 10
    assert rows["ring"]["rounds_to_target"] == {"mean": 12.5, "std": 2.5, "min": 10,
                                                "max": 15, "count": 2}
    assert rows["ring"]["bytes_per_peer_to_target"]["mean"] == 12.5 * 20
    assert rows["star"]["reached"] == 1 and rows["star"]["rounds_to_target"]["count"] == 1
    group = ("t", 4, "iid")
    assert winners(list(rows.values()), "rounds_to_target")[group] == "complete"
    # star is cheapest per round but only one seed of two reached the target
    assert winners(list(rows.values()), "bytes_per_peer_to_target")[group] == "ring"
    assert winners(list(rows.values()), "time_to_target/net")[group] == "complete"
    nobody = [dict(r, reached=0) for r in rows.values()]
    assert winners(nobody, "rounds_to_target")[group] is None


def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert rank_correlation([1, 2], [1, 2]) is None
    assert math.isclose(rank_correlation([1, 1, 2, 3], [1, 1, 2, 3]), 1)


def test_findings_write_ties_once():
    from gossip.bench.report import _count_phrase

    every = "ring = torus = exponential = complete"
    assert _count_phrase({1: every, 2: "complete"}) == (
        "complete in 2 of 2 (in 1 of them tied with ring, torus, exponential)")
    assert _count_phrase({1: "ring", 2: "torus = exponential"}) == (
        "ring in 1 of 2, torus in 1 of 2 (tied with exponential)")
    assert _count_phrase({1: "ring", 2: None, 3: "ring = star"}) == (
        "ring in 2 of 3 (in 1 of them tied with star), no topology in 1 of 3")
