"""The ZeroMQ transport on loopback: delivery, the MAXMSGSIZE guard, bind errors."""

import time

import numpy as np
import pytest
import zmq

from gossip.peer.launch import free_ports
from gossip.wire import Transport


@pytest.fixture
def pair():
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(2)]
    a = Transport(0, addresses, max_frame_bytes=1024)
    b = Transport(1, addresses, max_frame_bytes=1024)
    yield a, b
    a.close()
    b.close()


def receive(t, timeout=5.0):
    end = time.monotonic() + timeout
    disconnects = 0
    while time.monotonic() < end:
        frames, d = t.poll(50)
        disconnects += d
        if frames is not None:
            return frames, disconnects
    return None, disconnects


def test_multipart_messages_arrive_whole(pair):
    a, b = pair
    data = np.arange(100, dtype=np.float32)
    assert a.send(1, [b"header", data])
    frames, _ = receive(b)
    assert [f.bytes for f in frames] == [b"header", data.tobytes()]


def test_a_frame_over_maxmsgsize_is_dropped_and_the_link_recovers(pair):
    a, b = pair
    assert a.send(1, [b"small"])
    assert receive(b)[0] is not None
    assert a.send(1, [np.zeros(4096, np.uint8)])  # over b's 1024-byte limit
    frames, disconnects = receive(b, timeout=1.0)
    assert frames is None and disconnects >= 1
    time.sleep(0.3)  # the DEALER reconnects on its own
    assert a.send(1, [b"after"])
    frames, _ = receive(b)
    assert frames is not None and frames[0].bytes == b"after"


def test_binding_a_taken_address_is_a_clear_error(pair):
    a, _ = pair
    with pytest.raises(OSError, match="peer 0 cannot bind tcp://127.0.0.1:.*"):
        Transport(0, a.addresses, max_frame_bytes=1024)


def test_sends_to_an_absent_peer_fail_once_the_queue_is_full():
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(2)]
    a = Transport(0, addresses, max_frame_bytes=1024)
    try:
        results = [a.send(1, [b"x" * 10]) for _ in range(100)]
        assert results[0] and not all(results)  # queued up to the high-water mark, then refused
    finally:
        a.close()
    assert a.router.closed


def test_close_leaves_the_port_free(pair):
    a, b = pair
    a.close()
    b.close()
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    try:
        s.bind(a.addresses[0])
    finally:
        s.close(linger=0)
        ctx.term()
