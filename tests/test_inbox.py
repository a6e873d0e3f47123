"""The inbox: filing by round, stale and early messages, deadlines, byes, liveness, state."""

import threading
import time

import numpy as np
import pytest

from gossip.peer.inbox import Counters, Inbox
from gossip.peer.membership import Membership
from gossip.wire import encode, make_template

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


def test_state_requests_are_collected_once(inbox):
    send(inbox, 1, 0, kind="state_request")
    send(inbox, 3, 0, kind="state_request")
    assert inbox.take_state_requests() == {1, 3}
    assert inbox.take_state_requests() == set()


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
