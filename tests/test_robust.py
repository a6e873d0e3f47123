"""Robust aggregation (gossip.rules.robust): each aggregator on hand-made payloads, padding
slots ignored, the rules it can and cannot wrap, and the seeded claim of the issue on the
simulator (an attacker bites plain D-PSGD; clipping keeps the honest accuracy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gossip.cli import main
from gossip.config import Config
from gossip.errors import ConfigError
from gossip.experiment import build_experiment
from gossip.rules import ROBUST, RobustState, make_rule, robust
from gossip.rules.robust import (
    clip_radius,
    clipped_mix,
    coordinate_median,
    distances,
    masked_median,
    screened_mix,
    sort_slots,
    trimmed_mean,
)
from gossip.simulate import simulate

OWN = {"w": jnp.zeros((2, 3)), "b": jnp.zeros((3,))}


def payloads(*values: float) -> dict:
    """K payloads whose every coordinate is the given value."""
    v = jnp.asarray(values, jnp.float32)
    return {"w": jnp.broadcast_to(v[:, None, None], (len(values), 2, 3)),
            "b": jnp.broadcast_to(v[:, None], (len(values), 3))}


def test_distances_and_masked_median():
    d = distances(OWN, payloads(1.0, -2.0))
    np.testing.assert_allclose(d, [3.0, 6.0], rtol=1e-6)  # sqrt(9 * v^2)
    v = jnp.asarray([5.0, 1.0, 9.0, 3.0])
    assert float(masked_median(v, jnp.asarray([True, True, False, True]))) == 3.0
    assert float(masked_median(v, jnp.asarray([True, True, True, True]))) == 4.0


def test_clip_radius_is_the_f_plus_first_largest_distance_of_what_arrived():
    d = jnp.asarray([1.0, 7.0, 3.0, 100.0])
    valid = jnp.asarray([True, True, True, False])
    assert float(clip_radius(d, valid, 0)) == 7.0
    assert float(clip_radius(d, valid, 1)) == 3.0
    assert float(clip_radius(d, valid, 3)) == 0.0  # fewer than f+1 arrived: clip all


def test_clip_is_the_plain_average_without_outliers_and_bounds_a_huge_message():
    weights, self_w = jnp.full((3,), 0.25), jnp.asarray(0.25)
    same, clipped = clipped_mix(OWN, payloads(1.0, 1.0, 1.0), weights, self_w, 1)
    np.testing.assert_allclose(same["w"], 0.75, rtol=1e-6)  # nothing beyond the radius
    assert int(clipped) == 0
    huge = float(jnp.finfo(jnp.float32).max)
    out, clipped = clipped_mix(OWN, payloads(1.0, 2.0, huge), weights, self_w, 1)
    assert int(clipped) == 1
    # The huge message moves the peer no farther than the radius (the distance of p=2).
    move = float(distances(OWN, jax.tree.map(lambda x: x[None], out))[0])
    assert np.isfinite(move) and move <= 0.25 * 3.0 * (1 + 2 + 2) + 1e-5


def test_every_aggregator_ignores_padding_slots():
    # A slot of weight 0 (padding, or a message that did not arrive) holds garbage.
    real, padded = payloads(1.0, 2.0, 4.0), payloads(1.0, 2.0, 4.0, 1e30)
    w, wp = jnp.ones(3) * 0.2, jnp.asarray([0.2, 0.2, 0.2, 0.0])
    s = jnp.asarray(0.4)
    pairs = [
        (clipped_mix(OWN, real, w, s, 1)[0], clipped_mix(OWN, padded, wp, s, 1)[0]),
        (screened_mix(OWN, real, w, s)[0], screened_mix(OWN, padded, wp, s)[0]),
        (trimmed_mean(OWN, real, w, 1), trimmed_mean(OWN, padded, wp, 1)),
        (coordinate_median(OWN, real, w), coordinate_median(OWN, padded, wp)),
    ]
    for a, b in pairs:
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), a, b)


def test_trimmed_mean_and_median_values():
    p, w = payloads(-50.0, 1.0, 2.0, 3.0, 50.0), jnp.ones(5)
    # Trim one each side: (own 0 + 1 + 2 + 3) / 4.
    np.testing.assert_allclose(trimmed_mean(OWN, p, w, 1)["b"], 1.5, rtol=1e-6)
    # m <= 2f: the peer keeps its own value.
    np.testing.assert_allclose(trimmed_mean(OWN, payloads(7.0, 9.0), jnp.ones(2), 1)["b"], 0.0)
    # Median of own 0 and the five: (1 + 2) / 2.
    np.testing.assert_allclose(coordinate_median(OWN, p, w)["w"], 1.5, rtol=1e-6)


def test_screen_rejects_and_counts_the_far_message():
    out, rejected = screened_mix(OWN, payloads(1.0, 1.2, 0.8, 40.0), jnp.full((4,), 0.2),
                                 jnp.asarray(0.2))
    assert int(rejected) == 1
    np.testing.assert_allclose(out["b"], (1.0 + 1.2 + 0.8) * 0.2 / 0.8, rtol=1e-6)


def test_the_wrapper_counts_flags_and_keeps_the_rule():
    rule = robust(make_rule("dpsgd"), "clip", 1)
    state = rule.init(OWN)
    assert isinstance(state, RobustState) and int(state.flagged) == 0
    assert rule.message(OWN, state) is OWN
    _, state = rule.mix(OWN, state, payloads(1.0, 1.0, 50.0), jnp.full((3,), 0.25),
                        jnp.asarray(0.25))
    assert int(state.flagged) == 1
    # jit and vmap over peers, as the simulator runs it.
    stacked = jax.tree.map(lambda x: jnp.stack([x, x + 1]), OWN)
    many = jax.tree.map(lambda x: jnp.stack([x, x]), payloads(1.0, 1.0, 50.0))
    states = jax.vmap(rule.init)(stacked)
    mixed, states = jax.jit(jax.vmap(rule.mix))(stacked, states, many, jnp.full((2, 3), 0.25),
                                                jnp.full((2,), 0.25))
    assert states.flagged.shape == (2,) and bool(jnp.all(jnp.isfinite(mixed["w"])))


@pytest.mark.parametrize("name", ["dpsgd", "dpsgd_cta", "local_sgd"])
def test_every_defence_wraps_the_rules_that_send_their_parameters(name):
    for aggregator in ROBUST:
        rule = make_rule(name, 2, robust_mix=aggregator)
        assert rule.order == make_rule(name, 2).order
    outer = make_rule("dpsgd", robust_mix="clip", outer_optimizer="nesterov")
    assert isinstance(outer.init(OWN).inner, RobustState)


@pytest.mark.parametrize("argv, words", [
    (["--rule", "push_sum", "--robust", "clip"], ["push_sum", "clip", "dpsgd"]),
    (["--rule", "choco", "--robust", "median"], ["choco", "median"]),
    (["--rule", "dpsgd", "--compress", "top_k", "--robust", "clip"], ["top_k"]),
    (["--robust", "krum"], ["'krum'", "clip", "trimmed_mean"]),
    (["--robust-f", "-1"], ["robust_f", "-1"]),
    (["--byzantine", "4", "--attack", "alie"], ["byzantine", "peers (4)", "4"]),
    (["--byzantine", "1", "--attack", "lie"], ["'lie'", "alie", "sign_flip"]),
    (["--byzantine", "1"], ["byzantine", "--attack"]),
    (["--attack", "ipm"], ["ipm", "--byzantine"]),
    (["--byzantine", "1", "--attack", "ipm", "--rule", "push_sum"], ["ipm", "push_sum"]),
    (["--byzantine", "1", "--attack", "ipm", "--attack-scale", "-1"], ["attack_scale"]),
])
def test_bad_robust_or_attack_input_is_one_line_and_status_2(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    status = main(["sim", "--peers", "4", "--rounds", "2", "--no-progress", "--no-plot",
                   "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("gossip: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def test_one_attacker_bites_plain_dpsgd_and_clipping_holds(tmp_path):
    # The claim, small: 16 peers, exponential graph, digits-MLP, IID, 1 attacker.
    base = dict(topology="exponential", rounds=100, eval_every=100, seed=0)
    acc = {}
    for robust_mix, attack in (("none", "none"), ("none", "sign_flip"), ("clip", "sign_flip")):
        byz = {} if attack == "none" else dict(byzantine=1, attack=attack)
        record, _ = simulate(build_experiment(Config(**base, robust=robust_mix, **byz)),
                             progress=False)
        acc[robust_mix, attack] = record.get("honest_avg_model_acc", record["avg_model_acc"])
        if attack != "none":
            assert "honest_acc_mean" in record and "honest_acc_min" in record
    assert acc["none", "none"] > 0.9, acc
    assert acc["none", "sign_flip"] < acc["none", "none"] - 0.10, acc
    assert acc["clip", "sign_flip"] > acc["none", "none"] - 0.02, acc


def test_make_rule_rejects_a_defence_it_cannot_apply():
    with pytest.raises(ConfigError, match="push_sum"):
        make_rule("push_sum", robust_mix="trimmed_mean")
    with pytest.raises(ConfigError, match="robust_f"):
        robust(make_rule("dpsgd"), "clip", -1)


def test_the_summary_table_shows_the_honest_peers_apart():
    from gossip.summary_table import summary_table

    record = {"round": 3, "avg_model_acc": 0.1, "local_acc_mean": 0.2, "local_acc_min": 0.1,
              "local_acc_max": 0.3, "consensus_distance": 1.0, "bytes_sent": 10, "time": 1.0}
    assert "honest" not in summary_table(record, "accuracy")
    record.update(honest_avg_model_acc=0.95, honest_acc_mean=0.94, honest_acc_min=0.93)
    table = summary_table(record, "accuracy")
    line = next(t for t in table.splitlines() if t.startswith("honest average-model"))
    assert line.split()[-1] == "0.9500"
    assert "0.9400 / 0.9300" in table


def test_sort_slots_is_jnp_sort_bit_for_bit():
    # Equal values, -0 and 0, infinities and NaNs of both signs: the compare-exchange sort
    # of trimmed_mean and median must give jnp.sort's output exactly (it is also stable).
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0], np.float32)
    for k in (1, 2, 3, 5, 8):
        values = rng.choice(special, size=(k, 500)).astype(np.float32)
        values[:, :100] = rng.normal(size=(k, 100))
        got, want = jax.jit(sort_slots)(values), jnp.sort(values, axis=0)
        np.testing.assert_array_equal(np.asarray(got).view(np.int32),
                                      np.asarray(want).view(np.int32))
