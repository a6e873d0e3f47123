"""The inbox: filing by round, stale and early messages, deadlines, byes, liveness, state."""

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.peer.inbox import Counters, Inbox
from gossip.peer.membership import Membership
from gossip.wire import WireError, decode, encode, make_template

N = 4
PAYLOAD = {"w": np.ones(3, np.float32)}


def make_inbox(timeout=5.0):
    template = make_template(PAYLOAD)
    box = Inbox(transport=None, template=template, n_peers=N, max_ahead=2, counters=Counters(),
                membership=Membership(timeout, catchup_after=3), params_template=template)
    for t in range(3):
        box.expect(t, {1, 3})
    return box


@pytest.fixture
def inbox():
    """An inbox in round 0 whose in-neighbours 1 and 3 have said hello."""
    box = make_inbox()
    send(box, 1, 0, kind="hello")
    send(box, 3, 0, kind="hello")
    return box


def send(box, sender, round_, kind="gossip", value=1.0):
    payload = {"w": np.full(3, value, np.float32)} if kind in ("gossip", "state") else None
    box.handle(encode(kind, sender, round_, box.template, payload))


def test_messages_are_filed_by_round_and_counted(inbox):
    send(inbox, 1, 0, value=2.0)
    send(inbox, 3, 1)  # early: queued for round 1
    got = inbox.wait_round(0, timeout=0.05)
    assert list(got) == [1] and got[1]["w"][0] == 2.0
    assert inbox.counters.messages_missing == 1  # peer 3's round-0 message
    send(inbox, 1, 1)
    assert sorted(inbox.wait_round(1, timeout=1.0)) == [1, 3]
    c = inbox.counters
    assert (c.messages_received, c.bytes_received) == (3, 3 * 12)
    assert c.header_bytes_received > 0


def test_stale_far_ahead_stranger_and_duplicate(inbox):
    inbox.wait_round(0, timeout=0.0)
    send(inbox, 1, 0)  # round 0 is over: stale
    send(inbox, 1, 9)  # beyond max_ahead
    send(inbox, 2, 1)  # not an in-neighbour
    send(inbox, 3, 1)
    send(inbox, 3, 1)  # duplicate
    c = inbox.counters
    assert (c.messages_stale, c.messages_ahead, c.messages_rejected, c.messages_received) == (
        1, 1, 2, 1)


def test_wait_returns_as_soon_as_everyone_arrived(inbox):
    def later():
        time.sleep(0.1)
        send(inbox, 1, 0)
        send(inbox, 3, 0)

    threading.Thread(target=later).start()
    start = time.monotonic()
    assert sorted(inbox.wait_round(0, timeout=10.0)) == [1, 3]
    assert time.monotonic() - start < 5.0


def test_peers_that_said_bye_are_not_waited_for(inbox):
    send(inbox, 3, 0, kind="bye")
    send(inbox, 1, 0)
    start = time.monotonic()
    assert list(inbox.wait_round(0, timeout=10.0)) == [1]
    assert time.monotonic() - start < 5.0
    assert inbox.counters.messages_missing == 1


def test_hello_wait_reports_who_is_missing():
    box = make_inbox()
    send(box, 1, 0, kind="hello")
    assert box.wait_hello({1, 3}, timeout=0.05) == {3}
    send(box, 3, 0, kind="hello")
    assert box.wait_hello({1, 3}, timeout=0.05) == set()


def test_peers_never_heard_from_are_not_waited_for():
    box = make_inbox()
    send(box, 1, 0)
    start = time.monotonic()
    assert list(box.wait_round(0, timeout=10.0)) == [1]
    assert time.monotonic() - start < 5.0
    assert box.counters.messages_missing == 1


def test_a_neighbour_that_goes_silent_stops_being_waited_for():
    box = make_inbox(timeout=0.3)
    send(box, 1, 0, kind="hello")
    send(box, 3, 0, kind="hello")
    send(box, 1, 0)
    start = time.monotonic()
    assert list(box.wait_round(0, timeout=10.0)) == [1]  # 3 presumed dead after 0.3 s
    assert 0.25 < time.monotonic() - start < 5.0
    send(box, 3, 1, kind="heartbeat")  # back: waited for again
    threading.Timer(0.1, send, (box, 3, 1)).start()
    send(box, 1, 1)
    assert sorted(box.wait_round(1, timeout=10.0)) == [1, 3]


def test_lagging_and_moved_on_neighbours_are_not_waited_for(inbox):
    send(inbox, 3, 5, kind="heartbeat")  # 3 is in round 5: long past round 0 and 1
    send(inbox, 1, 0)
    start = time.monotonic()
    assert list(inbox.wait_round(0, timeout=10.0)) == [1]
    assert time.monotonic() - start < 5.0
    inbox.jump(6, {6: {1, 3}, 7: {1, 3}, 8: {1, 3}})
    send(inbox, 3, 2, kind="heartbeat")  # 3 restarted from round 2 while we are in 6
    send(inbox, 1, 6)
    start = time.monotonic()
    assert list(inbox.wait_round(6, timeout=10.0)) == [1]  # 3 lags: not waited for
    assert time.monotonic() - start < 5.0
    assert inbox.leader({1, 3}, 7) is None
    send(inbox, 1, 10, kind="heartbeat")
    assert inbox.leader({1, 3}, 7) == 1  # 1 is 3 rounds ahead of round 7


def test_state_is_taken_only_from_the_peer_asked():
    box = make_inbox()
    send(box, 2, 7, kind="state", value=5.0)  # not asked for
    assert box.counters.messages_rejected == 1
    box.expect_state(2)
    threading.Timer(0.05, send, (box, 2, 7, "state", 5.0)).start()
    state = box.wait_state(timeout=10.0)
    assert (state.sender, state.round, float(state.payload["w"][0])) == (2, 7, 5.0)
    assert box.wait_state(timeout=0.01) is None


class FakeTransport:
    """Records what the inbox sends; ``curve`` set: messages must come with their key."""

    def __init__(self, peer_id=0, curve=None, reachable=True):
        self.peer_id, self.curve, self.reachable = peer_id, curve, reachable
        self.sent = []

    def send(self, dest, frames, beat=False, answer=False):
        if self.reachable:
            self.sent.append((dest, frames, answer))
        return self.reachable


def inbox_on(transport, **kwargs):
    template = make_template(PAYLOAD)
    box = Inbox(transport, template, N, max_ahead=2, counters=Counters(),
                membership=Membership(5.0, catchup_after=3, rounds=kwargs.pop("rounds", None)),
                params_template=template, **kwargs)
    for t in range(3):
        box.expect(t, {1, 3})
    return box


def test_state_requests_are_answered_at_once_with_the_published_parameters():
    transport = FakeTransport()
    box = inbox_on(transport)
    send(box, 1, 0, kind="state_request")
    send(box, 3, 0, kind="state_request")
    box._answer()  # nothing published yet: nothing sent, requests kept
    assert transport.sent == [] and set(box.state_requests) == {1, 3}
    box.publish(5, {"w": np.full(3, 7.0, np.float32)})
    box._answer()
    assert sorted(d for d, _, answer in transport.sent if answer) == [1, 3]
    other = make_inbox()
    other.expect_state(0)  # the answer of peer 0 (our fake transport's id)
    other.handle(transport.sent[0][1])
    state = other.wait_state(timeout=0.0)
    assert (state.kind, state.round, float(state.payload["w"][0])) == ("state", 5, 7.0)
    box._answer()
    assert len(transport.sent) == 2 and box.state_requests == {}  # answered once
    assert box.counters.bytes_sent == 2 * 12


def test_own_id_spoofed_sender_and_throttled_messages_are_counted_by_reason():
    box = inbox_on(FakeTransport(peer_id=0, curve=object()))
    frames = encode("heartbeat", 0, 0, box.template)  # our own id
    box.handle(frames, authenticated=0)
    box.handle(encode("heartbeat", 1, 0, box.template), authenticated=3)  # 3 speaks as 1
    box.handle(encode("heartbeat", 1, 0, box.template), authenticated=None)
    c = box.counters
    assert (c.rejected_own_id, c.rejected_spoofed, c.messages_rejected) == (1, 2, 3)
    assert not box.members.alive(1)  # a spoofed message says nothing about peer 1
    for _ in range(100):  # a flood of heartbeats with the right key
        box.handle(encode("heartbeat", 3, 0, box.template), authenticated=3)
    assert c.messages_throttled >= 100 - 16 and box.members.alive(3)
    assert c.messages_rejected == 3  # throttled messages are not rejections


def test_far_ahead_gossip_does_not_raise_the_known_round(inbox):
    send(inbox, 1, 2**64 - 1)
    assert inbox.counters.messages_ahead == 1
    assert inbox.members.rounds[1] == 0 and inbox.leader({1, 3}, 0) is None
    assert inbox.members.alive(1)


def test_implausible_claims_are_rejected_and_change_nothing():
    box = inbox_on(FakeTransport(), rounds=50)
    send(box, 1, 0, kind="hello")
    send(box, 1, 51, kind="heartbeat")  # past the run's end
    assert box.counters.rejected_implausible == 1 and box.members.rounds[1] == 0
    box.members.ran(10.0)  # our rounds take 10 s: nobody is 100 rounds ahead a moment later
    send(box, 1, 100 - 50, kind="heartbeat")
    assert box.counters.rejected_implausible == 2 and box.leader({1, 3}, 0) is None
    send(box, 1, 5, kind="heartbeat")  # within the slack: believed
    assert box.members.rounds[1] == 5


def test_state_outside_the_next_rounds_is_counted_and_ends_the_wait_at_once():
    box = inbox_on(FakeTransport(), rounds=10)
    box.jump(4, {4: {1, 3}})
    for round_ in (3, 4, 10):
        box.expect_state(1)
        send(box, 1, round_, kind="state")
        start = time.monotonic()
        assert box.wait_state(timeout=10.0) is None
        assert time.monotonic() - start < 5.0
    assert box.counters.rejected_state_round == 3 == box.counters.messages_rejected
    assert box.leader({1}, 0) is None  # asked in vain: never asked again


def test_jump_moves_to_a_later_round(inbox):
    send(inbox, 1, 2)
    inbox.jump(2, {2: {1, 3}, 3: {1, 3}, 4: {1, 3}})
    send(inbox, 1, 1)  # before the jump target: stale
    send(inbox, 3, 4)  # now within max_ahead
    assert inbox.counters.messages_stale == 1
    assert list(inbox.wait_round(2, timeout=0.05)) == [1]


def test_garbage_is_counted_not_raised(inbox, caplog):
    inbox.handle([b"\x00\x01garbage"])
    inbox.handle([])
    assert inbox.counters.messages_rejected == 2
    assert "rejected a message: header is not valid msgpack" in caplog.text


DROPS = ("messages_received", "messages_rejected", "messages_stale", "messages_ahead",
         "messages_throttled")


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.lists(st.binary(max_size=64), max_size=4) | st.builds(
    lambda kind, sender, round_, cut: encode(kind, sender, round_, make_template(PAYLOAD),
                                             PAYLOAD if kind in ("gossip", "state") else None
                                             )[:cut],
    st.sampled_from(["gossip", "hello", "heartbeat", "state_request", "state", "bye"]),
    st.integers(0, N - 1), st.integers(0, 2**64 - 1), st.integers(0, 3)))
def test_any_frames_are_filed_or_counted_once_and_never_raise(frames):
    box = make_inbox()
    before = {k: getattr(box.counters, k) for k in DROPS}
    box.handle(frames)
    after = {k: getattr(box.counters, k) for k in DROPS}
    counted = sum(after[k] - before[k] for k in DROPS)
    assert counted <= 1
    try:
        msg = decode(frames, box.template, N, box.template)
    except WireError:
        assert after["messages_rejected"] == before["messages_rejected"] + 1
        return
    if msg.kind in ("gossip", "state"):
        assert counted == 1  # filed (received) or dropped under one reason


def test_async_mode_keeps_the_newest_message_per_in_neighbour(inbox):
    inbox.go_async({1, 3}, final_round=10)
    send(inbox, 1, 0, value=1.0)
    send(inbox, 1, 2, value=3.0)  # replaces round 0 (its running sum carries round 0's)
    send(inbox, 1, 1, value=2.0)  # older than the one held: stale
    send(inbox, 2, 0)  # not an in-neighbour
    send(inbox, 3, 11)  # past the run's rounds
    got = inbox.take_latest(1)
    assert list(got) == [1] and got[1][0] == 2 and got[1][1]["w"][0] == 3.0
    assert inbox.take_latest(2) == {} and inbox.current == 2
    send(inbox, 1, 2)  # a round already taken (a sender resumed from a checkpoint): stale
    send(inbox, 3, 10)  # round == rounds: peer 3's last message
    c = inbox.counters
    assert (c.messages_superseded, c.messages_stale, c.rejected_not_neighbour,
            c.rejected_implausible, c.messages_received) == (1, 2, 1, 1, 3)
    assert inbox.finished == {3}
    inbox.wait_latest({1, 3}, timeout=5.0)  # returns at once: a message is held
    assert list(inbox.take_latest(3)) == [3]


def test_async_wait_latest_ends_when_every_sender_finished_or_left(inbox):
    inbox.go_async({1, 3}, final_round=10)
    send(inbox, 3, 10)
    inbox.take_latest(1)
    send(inbox, 1, 4, kind="bye")
    begin = time.monotonic()
    inbox.wait_latest({1, 3}, timeout=30.0)  # 3 finished, 1 left: nothing to wait for
    inbox.wait_left({1}, timeout=30.0)
    assert time.monotonic() - begin < 20.0  # neither wait ran to its timeout


def test_finished_read_before_a_take_names_only_last_messages_that_take_returns(inbox):
    # An async peer's end (gossip.peer.asynchronous._absorb) stops when every sender's last
    # message is taken in: `finished` read *after* a take may name a last message that
    # arrived in between and was never taken (its push-sum mass lost).
    inbox.go_async({1, 3}, final_round=10)
    send(inbox, 1, 10)  # peer 1's last message
    done = inbox.finished_now()
    got = inbox.take_latest(1)
    send(inbox, 3, 10)  # peer 3's last message arrives after the take
    assert done == {1} and set(got) == {1}
    assert inbox.finished_now() == {1, 3}  # arrived, not yet taken
    assert list(inbox.take_latest(2)) == [3]
