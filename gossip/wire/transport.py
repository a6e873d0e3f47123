"""ZeroMQ transport of one peer: a ROUTER it binds, one DEALER per peer it sends to.

The ROUTER is used only by the receiving thread, the DEALERs only by the sending (main)
thread, except two more sets of DEALERs that carry the receiving thread's heartbeats and its
answers to state requests:
ZeroMQ sockets are not thread-safe, so each stays on one thread. Every socket has
``LINGER=0`` (a bounded linger for the last messages of a clean exit), ZMTP heartbeats so
a dead connection is noticed, and automatic reconnects. The ROUTER sets ``MAXMSGSIZE`` just
above the largest frame a valid message has: libzmq drops a connection that sends a larger
frame before the application sees it; a socket monitor counts those disconnects.

With :class:`~gossip.wire.curve.CurveKeys` every connection is CurveZMQ: the ROUTER is a
CURVE server, every DEALER a CURVE client that knows its destination's public key, and a
ZAP handler (``zmq.auth.thread.ThreadAuthenticator``, one thread on the transport's own
context) accepts only clients whose public key is one of the run's peers'. A client that is
refused, or that does not speak CURVE, never gets a message through; its failed handshakes
close connections, which the monitor counts like any other disconnect. The handler also
names each accepted connection by the peer id its key belongs to (the ZAP user id, which
libzmq attaches to every frame as the ``User-Id`` property): :meth:`Transport.sender_of`
tells which peer a message really came from, whatever its header says.

The ROUTER's receive high-water mark bounds the messages libzmq queues per connection
before it stops reading from it (TCP then pushes back on the sender).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from gossip.wire.curve import CurveKeys, check_curve

log = logging.getLogger("gossip.wire")

HEARTBEAT_MS = 1000
RECONNECT_MS = 100
RECONNECT_MAX_MS = 2000
CONNECT_TIMEOUT_MS = 2000  # a connect stuck in SYN retries (link down) is abandoned and retried
SEND_HWM = 8  # messages queued per neighbour before sends fail instead of growing memory
RECV_HWM = 16  # default: messages queued per incoming connection before libzmq stops reading


class AllowList:
    """ZAP credentials provider: accepts exactly the given public keys (Z85).

    Args:
        keys: the run's public keys; entry ``i`` is peer ``i``'s, so the list also maps
            each key to its peer id.

    A refused key is logged once (warning), naming the key.
    """

    def __init__(self, keys: Iterable[bytes]) -> None:
        self.ids = {key: i for i, key in enumerate(keys)}
        self.keys = frozenset(self.ids)
        self._refused: set[bytes] = set()
        self._lock = threading.Lock()

    def peer_of(self, key: bytes) -> int | None:
        """The peer id of a public key (Z85), or None."""
        return self.ids.get(key)

    def callback(self, domain: str, key: bytes) -> bool:
        """Called by the authenticator's thread for each CURVE handshake."""
        if key in self.keys:
            return True
        with self._lock:
            first = key not in self._refused
            self._refused.add(key)
        if first:
            log.warning("refused a CURVE connection from a key not among the run's peers: %s",
                        key.decode(errors="replace"))
        return False


class _PeerAuthenticator(ThreadAuthenticator):
    """The ZAP handler: an allow-list of keys, and the peer id of a key as its user id."""

    def __init__(self, context: zmq.Context, allow: AllowList) -> None:
        super().__init__(context, log=log.getChild("zap"))
        self.allow = allow

    def curve_user_id(self, client_public_key: bytes) -> str:
        """``str(peer id)`` of an accepted key (only accepted keys get here)."""
        peer = self.allow.peer_of(z85.encode(client_public_key))
        return "" if peer is None else str(peer)


class Transport:
    """The sockets of one peer.

    Args:
        peer_id: this peer's id (index into ``addresses``).
        addresses: every peer's ZeroMQ address, e.g. ``tcp://10.0.0.2:7100``.
        max_frame_bytes: ``MAXMSGSIZE`` of the receiving socket (per frame).
        bind: the address to bind; default ``addresses[peer_id]``.
        context: a ZeroMQ context; default a new one, terminated on ``close``. With
            ``curve``, at most one transport per context (one ZAP handler per context).
        curve: this peer's CURVE keys and the public keys of every peer: encrypt and
            authenticate every connection. None: plain TCP, no authentication.
        recv_hwm: ``RCVHWM`` of the receiving socket: messages libzmq queues per incoming
            connection before it stops reading from it.

    Raises:
        OSError: the address cannot be bound (in use, or not an address of this host);
            ``curve`` given but this libzmq has no CURVE support.
    """

    def __init__(self, peer_id: int, addresses: Sequence[str], *, max_frame_bytes: int,
                 bind: str | None = None, context: zmq.Context | None = None,
                 curve: CurveKeys | None = None, recv_hwm: int = RECV_HWM) -> None:
        self.peer_id = peer_id
        self.addresses = list(addresses)
        self.curve = curve
        self.max_frame_bytes = int(max_frame_bytes)
        if curve is not None:
            check_curve()
            if len(curve.peers) != len(self.addresses):
                raise ValueError(f"{len(curve.peers)} public keys for "
                                 f"{len(self.addresses)} peers")
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.authenticator: ThreadAuthenticator | None = None
        if curve is not None:
            allow = AllowList(curve.peers)
            self.authenticator = _PeerAuthenticator(self.context, allow)
            self.authenticator.start()
            self.authenticator.configure_curve_callback("*", allow)
        self.router = self.context.socket(zmq.ROUTER)
        self._configure(self.router)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)
        self.router.setsockopt(zmq.RCVHWM, int(recv_hwm))
        if curve is not None:
            self.router.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
            self.router.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
            self.router.setsockopt(zmq.CURVE_SERVER, 1)
        self.bind_address = bind or self.addresses[peer_id]
        try:
            self.router.bind(self.bind_address)
        except zmq.ZMQError as e:
            self._close_router()
            raise OSError(f"peer {peer_id} cannot bind {self.bind_address}: {e}") from None
        self.monitor = self.router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.dealers: dict[int, zmq.Socket] = {}
        self.beat_dealers: dict[int, zmq.Socket] = {}
        self.answer_dealers: dict[int, zmq.Socket] = {}
        self.poller = zmq.Poller()
        self.poller.register(self.router, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)

    @staticmethod
    def _configure(sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * HEARTBEAT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TTL, 3 * HEARTBEAT_MS)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)

    def _dealer(self, dest: int, pool: dict[int, zmq.Socket]) -> zmq.Socket:
        sock = pool.get(dest)
        if sock is None:
            sock = self.context.socket(zmq.DEALER)
            self._configure(sock)
            sock.setsockopt(zmq.SNDHWM, SEND_HWM)
            sock.setsockopt(zmq.CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS)
            if pool is self.beat_dealers:  # no heartbeat queued while unconnected: stale later
                sock.setsockopt(zmq.IMMEDIATE, 1)
            if self.curve is not None:
                sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public)
                sock.setsockopt(zmq.CURVE_SERVERKEY, self.curve.peers[dest])
            sock.connect(self.addresses[dest])
            pool[dest] = sock
        return sock

    def connect(self, dest: int, *, beat: bool = False, answer: bool = False) -> None:
        """Opens the DEALER of a pool to ``dest`` ahead of its first message (it connects,
        and reconnects, on its own), so that message does not wait for a TCP handshake."""
        self._dealer(dest, self.beat_dealers if beat else self.answer_dealers if answer
                     else self.dealers)

    def send(self, dest: int, frames: Sequence[Any], *, beat: bool = False,
             answer: bool = False) -> bool:
        """Queues a multipart message to peer ``dest`` without blocking or copying.

        Args:
            dest: the receiving peer's id.
            frames: the encoded message.
            beat: send on the heartbeat sockets (receiving thread only; nothing is queued
                for a peer not connected) instead of the main thread's.
            answer: send on the receiving thread's sockets for answers (queued until the
                peer is connected, like the main thread's).

        Returns:
            False when the message was dropped because ``dest``'s queue is full (it has been
            unreachable for ``SEND_HWM`` messages).
        """
        try:
            pool = (self.beat_dealers if beat else self.answer_dealers if answer
                    else self.dealers)
            self._dealer(dest, pool).send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        return True

    def poll(self, timeout_ms: int) -> tuple[list[zmq.Frame] | None, int]:
        """Waits up to ``timeout_ms`` for a message (receiving thread only).

        Returns:
            ``(frames, disconnects)``: the frames of one message without the routing id,
            or None, and the number of connections the transport dropped meanwhile.
        """
        events = dict(self.poller.poll(timeout_ms))
        disconnects = 0
        if self.monitor in events:
            while self.monitor.poll(0):
                recv_monitor_message(self.monitor)
                disconnects += 1
        if self.router in events:
            frames = self.router.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            return frames[1:], disconnects
        return None, disconnects

    def sender_of(self, frames: Sequence[Any]) -> int | None:
        """The peer whose key a received message came with (CURVE), else None.

        Args:
            frames: frames returned by ``poll`` (``zmq.Frame``).

        Returns:
            The peer id the ZAP handler gave the connection; None without CURVE, or when
            the frames carry no such property.
        """
        if self.curve is None or not frames or not hasattr(frames[0], "get"):
            return None
        try:
            user = frames[0].get("User-Id")
        except zmq.ZMQError:
            return None
        return int(user) if isinstance(user, str) and user.isdigit() else None

    def _close_router(self) -> None:
        """The last of closing: the ROUTER, the authenticator, the context if it is ours."""
        self.router.close(linger=0)
        if self.authenticator is not None:
            self.authenticator.stop()  # joins its thread
            self.authenticator = None
        if self._own_context:
            self.context.term()

    def close(self, linger_ms: int = 0) -> None:
        """Closes every socket and stops the authenticator (once); queued outgoing messages
        get at most ``linger_ms``."""
        if self.router.closed:
            return
        for sock in self.dealers.values():
            sock.close(linger=linger_ms)
        for sock in [*self.beat_dealers.values(), *self.answer_dealers.values()]:
            sock.close(linger=0)
        self.dealers.clear()
        self.beat_dealers.clear()
        self.answer_dealers.clear()
        self.router.disable_monitor()
        self.monitor.close(linger=0)
        self._close_router()
