"""The inbox: filing by round, stale and early messages, deadlines, byes."""

import threading
import time

import numpy as np
import pytest

from gossip.peer.inbox import Counters, Inbox
from gossip.wire import encode, make_template

N = 4
PAYLOAD = {"w": np.ones(3, np.float32)}


@pytest.fixture
def inbox():
    template = make_template(PAYLOAD)
    box = Inbox(transport=None, template=template, n_peers=N, max_ahead=2, counters=Counters())
    for t in range(3):
        box.expect(t, {1, 3})
    return box


def send(box, sender, round_, kind="gossip", value=1.0):
    payload = {"w": np.full(3, value, np.float32)} if kind == "gossip" else None
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
    assert (c.messages_stale, c.messages_rejected, c.messages_received) == (1, 3, 1)


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


def test_hello_wait_reports_who_is_missing(inbox):
    send(inbox, 1, 0, kind="hello")
    assert inbox.wait_hello({1, 3}, timeout=0.05) == {3}
    send(inbox, 3, 0, kind="hello")
    assert inbox.wait_hello({1, 3}, timeout=0.05) == set()


def test_garbage_is_counted_not_raised(inbox, caplog):
    inbox.handle([b"\x00\x01garbage"])
    inbox.handle([])
    assert inbox.counters.messages_rejected == 2
    assert "rejected a message: header is not valid msgpack" in caplog.text
