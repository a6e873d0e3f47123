"""The ZeroMQ transport on loopback: delivery, the MAXMSGSIZE guard, bind errors, CURVE."""

import threading
import time

import numpy as np
import pytest
import zmq
from peer_utils import wait_for

from gossip.launch.local import free_ports
from gossip.wire import Transport, load_keys, write_keys


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


# -- CurveZMQ ---------------------------------------------------------------------------------


@pytest.fixture
def curve_pair(tmp_path):
    write_keys(tmp_path, 2)
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(2)]
    threads = set(threading.enumerate())
    a = Transport(0, addresses, max_frame_bytes=1024, curve=load_keys(tmp_path, 0, 2))
    b = Transport(1, addresses, max_frame_bytes=1024, curve=load_keys(tmp_path, 1, 2))
    yield a, b
    a.close()
    b.close()
    assert set(threading.enumerate()) <= threads  # the authenticators' threads are gone


def _stranger(address: str, server_key: bytes | None) -> tuple[zmq.Context, zmq.Socket]:
    """A DEALER connected to ``address``: plain, or CURVE with a key pair of its own."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key is not None:
        public, secret = zmq.curve_keypair()
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
    sock.connect(address)
    return ctx, sock


def test_curve_peers_exchange_messages_on_both_socket_pools(curve_pair):
    a, b = curve_pair
    assert a.router.getsockopt(zmq.CURVE_SERVER) == 1
    assert a.send(1, [b"header", np.arange(10, dtype=np.float32)])
    frames, _ = receive(b)
    assert frames[0].bytes == b"header"
    b.send(0, [b"beat"], beat=True)  # IMMEDIATE: dropped until the handshake is done
    wait_for(lambda: b.send(0, [b"beat"], beat=True), 5, "a heartbeat socket to connect")
    assert receive(a)[0][0].bytes == b"beat"
    # a plain DEALER gets nothing through (below): both pools' sockets are CURVE clients


def test_curve_refuses_plain_and_unknown_clients(curve_pair, caplog):
    a, b = curve_pair
    strangers = [_stranger(b.addresses[1], None), _stranger(b.addresses[1], b.curve.peers[1])]
    try:
        for _, sock in strangers:
            sock.send(b"intruder")
        frames, disconnects = receive(b, timeout=1.0)
        assert frames is None and disconnects >= 1  # failed handshakes close connections
        assert a.send(1, [b"friend"])
        frames, _ = receive(b)
        assert frames[0].bytes == b"friend"
        assert receive(b, timeout=0.5)[0] is None
    finally:
        for ctx, sock in strangers:
            sock.close()
            ctx.term()
    assert "refused a CURVE connection from a key not among the run's peers" in caplog.text


def test_curve_close_is_idempotent_and_stops_the_authenticator(tmp_path):
    write_keys(tmp_path, 2)
    before = set(threading.enumerate())
    t = Transport(0, [f"tcp://127.0.0.1:{p}" for p in free_ports(2)], max_frame_bytes=1024,
                  curve=load_keys(tmp_path, 0, 2))
    assert set(threading.enumerate()) - before  # the ZAP handler's thread
    t.send(1, [b"x"])
    t.close()
    t.close()
    assert t.authenticator is None and set(threading.enumerate()) <= before
    with pytest.raises(OSError, match="cannot bind"):  # a failed bind leaves no thread either
        Transport(0, ["tcp://127.0.0.1:1"] * 2, bind="tcp://192.0.2.1:9",
                  max_frame_bytes=1024, curve=load_keys(tmp_path, 0, 2))
    assert set(threading.enumerate()) <= before
