"""``gossip peer``'s verdict on a finished run (``gossip.launch.cli.run_failure``)."""

from gossip.launch.cli import run_failure
from gossip.rules import make_rule

CLEAN = {"round": 10, "params_finite": True, "messages_missing": 0, "messages_rejected": 0}


def test_a_clean_run_of_any_rule_has_no_failure():
    for rule in (make_rule("dpsgd"), make_rule("choco", compress="top_k")):
        assert run_failure(CLEAN, rule) is None


def test_non_finite_parameters_fail_every_rule():
    for rule in (make_rule("dpsgd"), make_rule("push_sum")):
        assert "not finite" in run_failure({**CLEAN, "params_finite": False}, rule)


def test_choco_fails_on_a_lost_or_rejected_message_and_dpsgd_tolerates_it():
    choco = make_rule("choco", compress="top_k")
    for lost in ({"messages_missing": 1}, {"messages_rejected": 2}):
        why = run_failure({**CLEAN, **lost}, choco)
        assert why is not None and "'choco' needs every message" in why
        assert run_failure({**CLEAN, **lost}, make_rule("dpsgd")) is None


def test_an_async_peer_fails_when_push_sum_mass_was_lost():
    rule = make_rule("push_sum")
    done = {**CLEAN, "mass": 0.9, "final_missing": 0, "final_unsent": 0}
    assert run_failure(done, rule) is None
    for lost in ({"final_missing": 1}, {"final_unsent": 2}):
        why = run_failure({**done, **lost}, rule)
        assert why is not None and "mass was lost" in why
    assert "not positive" in run_failure({**done, "mass": 0.0}, rule)
