"""Membership: liveness by silence, rounds, lagging, leaders and isolation (fake clock)."""

import pytest

from gossip.peer.membership import Membership


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def members(clock):
    return Membership(timeout=5.0, catchup_after=3, clock=clock)


def test_a_peer_is_alive_until_silent_for_the_timeout(members, clock):
    assert not members.alive(1)  # never heard
    members.heard(1, 0, current=True, at=0)
    clock.now += 5.0
    assert members.alive(1)
    clock.now += 0.1
    assert not members.alive(1)
    members.heard(1, 2, current=True, at=0)  # back
    assert members.alive(1)


def test_bye_ends_liveness_until_heard_again(members):
    members.heard(1, 0, current=True, at=0)
    members.left(1)
    assert not members.alive(1) and not members.waitable(1, 0)
    members.heard(1, 0, current=True, at=0)  # restarted
    assert members.alive(1)


def test_rounds_follow_heartbeats_down_and_gossip_only_up(members):
    members.heard(1, 7, current=True, at=7)
    members.heard(1, 5, current=False, at=7)  # an older gossip message: round stays 7
    assert members.rounds[1] == 7
    members.heard(1, 2, current=True, at=7)  # restarted from a checkpoint at round 2
    assert members.rounds[1] == 2


@pytest.mark.parametrize("known, waited", [(7, False), (8, True), (10, True), (11, True),
                                           (12, False)])
def test_round_10_waits_only_for_neighbours_near_it(members, known, waited):
    members.heard(1, known, current=True, at=10)
    assert members.waitable(1, 10) is waited


def test_lagging_is_judged_when_the_round_is_said_not_later(members):
    members.heard(1, 0, current=True, at=0)  # said hello in round 0, quiet since
    assert members.waitable(1, 6)  # its round is old news, not a sign that it lags
    members.heard(2, 10, current=True, at=25)  # restarted at round 10 while we are at 25
    assert members.lagging(2) and not members.waitable(2, 25)
    members.heard(2, 26, current=False, at=26)  # caught up
    assert not members.lagging(2) and members.waitable(2, 26)
    members.heard(2, 20, current=False, at=30)  # a late old message: not a sign of lagging
    assert not members.lagging(2)


def test_leader_is_the_freshest_peer_far_enough_ahead(members, clock):
    members.heard(1, 12, current=True, at=0)
    members.heard(2, 14, current=True, at=0)
    members.heard(3, 20, current=True, at=0)
    clock.now += 4.0
    members.heard(1, 12, current=True, at=0)
    members.heard(2, 14, current=True, at=0)
    clock.now += 2.0  # 3 is now silent: not a leader
    assert members.leader({1, 2, 3}, 10) == 2
    assert members.leader({1, 2, 3}, 12) is None  # 14 is only 2 rounds ahead of 12
    assert members.leader({1}, 9) == 1


def test_isolated_only_after_losing_every_neighbour(members, clock):
    assert not members.isolated({1, 2})  # never heard anyone: start-up, not isolation
    members.heard(1, 0, current=True, at=0)
    members.heard(2, 0, current=True, at=0)
    clock.now += 6.0
    assert members.isolated({1, 2})
    members.left(1)
    assert members.isolated({1, 2})  # 2 went silent without a bye
    members.left(2)
    assert not members.isolated({1, 2})  # all finished: nobody to wait for
    members.heard(2, 3, current=True, at=0)
    assert not members.isolated({1, 2})



def test_claims_are_plausible_within_the_run_and_the_pace_of_the_rounds(clock):
    members = Membership(timeout=5.0, catchup_after=3, clock=clock, rounds=100)
    assert members.plausible(100) and not members.plausible(101)  # no round timed yet
    members.start(10)
    members.ran(2.0)  # our fastest round: 2 s, so nobody runs more than 10x faster
    slack = 2 * 3 + 2
    assert members.plausible(10 + slack) and not members.plausible(10 + slack + 1)
    clock.now += 4.0  # 4 s later: up to 20 more rounds
    assert members.plausible(30 + slack) and not members.plausible(31 + slack)
    assert members.plausible(0)  # behind is always possible (a restarted peer)
    members.start(50)  # caught up to round 50
    assert members.plausible(50 + slack)


def test_a_peer_asked_in_vain_is_never_a_leader_again(members):
    members.heard(1, 20, current=True, at=0)
    assert members.leader({1}, 0) == 1
    members.no_answer(1)
    assert members.leader({1}, 0) is None
    members.heard(1, 40, current=True, at=0)
    assert members.leader({1}, 0) is None


def test_seen_shows_a_peer_alive_without_moving_its_round(members):
    members.heard(1, 3, current=True, at=3)
    members.left(1)
    members.seen(1)
    assert members.alive(1) and members.rounds[1] == 3
