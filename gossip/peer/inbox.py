"""The receiving side of a peer: a background thread that validates messages into an inbox.

The thread owns the ROUTER socket and the heartbeat sockets. Each message is decoded against
the local templates. A valid gossip message is filed under its round if it comes from an
expected in-neighbour of that round and the round is neither past (stale: dropped and
counted) nor more than ``max_ahead`` rounds ahead (dropped and counted as ahead). Every valid
message updates the ``Membership`` (who is alive, in which round). Every
``heartbeat_interval`` seconds the thread sends a heartbeat with the current round to the
peers in ``beat_targets``. The main thread registers the senders it expects for the coming
rounds, waits for a round's messages until a deadline (never for a dead, departed or lagging
neighbour), answers state requests and asks for state when it lags behind.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gossip.peer.membership import Membership
from gossip.wire import Message, Template, Transport, WireError, decode, encode

log = logging.getLogger("gossip.peer")
RECHECK_S = 0.05  # how often a wait re-reads liveness (neighbours die while we wait)


@dataclasses.dataclass
class Counters:
    """Cumulative message and byte counts of one peer (written to its metrics file)."""

    messages_sent: int = 0
    send_failures: int = 0
    messages_received: int = 0
    messages_missing: int = 0
    messages_rejected: int = 0
    messages_stale: int = 0
    messages_ahead: int = 0
    transport_disconnects: int = 0
    bytes_sent: int = 0
    header_bytes_sent: int = 0
    bytes_received: int = 0
    header_bytes_received: int = 0
    catch_ups: int = 0


class Inbox:
    """Validated messages by round, filled by a receiving thread that also sends heartbeats.

    Args:
        transport: the peer's sockets (the thread uses the ROUTER and the heartbeat DEALERs).
        template: the structure every gossip message must match.
        n_peers: number of peers.
        max_ahead: how many rounds ahead of the current one a message may be.
        counters: where receive-side counts go.
        membership: liveness and rounds of the other peers (default: 5 s timeout,
            catch up 3 rounds behind).
        params_template: the parameter structure of ``"state"`` messages (None: refused).
        heartbeat_interval: seconds between heartbeats (None: send none).
    """

    def __init__(self, transport: Transport | None, template: Template, n_peers: int,
                 max_ahead: int, counters: Counters, membership: Membership | None = None,
                 params_template: Template | None = None,
                 heartbeat_interval: float | None = None) -> None:
        self.transport = transport
        self.template = template
        self.params_template = params_template
        self.n_peers = n_peers
        self.max_ahead = max_ahead
        self.counters = counters
        self.members = membership or Membership(timeout=5.0, catchup_after=3)
        self.heartbeat_interval = heartbeat_interval
        self.beat_targets: frozenset[int] = frozenset()
        self.current = 0
        self.state_requests: set[int] = set()
        self._state_from: int | None = None
        self._state: Message | None = None
        self._expected: dict[int, set[int]] = {}
        self._messages: dict[int, dict[int, Any]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gossip-receiver", daemon=True)
        self.error: BaseException | None = None

    # -- receiving thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        next_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.heartbeat_interval and time.monotonic() >= next_beat:
                    self._beat()
                    next_beat = time.monotonic() + self.heartbeat_interval
                frames, disconnects = self.transport.poll(50)
                if disconnects:
                    with self._cond:
                        self.counters.transport_disconnects += disconnects
                    log.info("%d connection(s) closed by the transport (peer left, sent a "
                             "frame over MAXMSGSIZE=%d bytes, or failed the CURVE handshake)",
                             disconnects, self.template.max_frame_bytes)
                if frames is not None:
                    self.handle(frames)
        except BaseException as e:  # surfaced to the main thread by ``wait``
            self.error = e
            with self._cond:
                self._cond.notify_all()

    def _beat(self) -> None:
        frames = encode("heartbeat", self.transport.peer_id, self.current, self.template)
        sent = sum(self.transport.send(j, frames, beat=True)  # False: queue full, peer away
                   for j in sorted(self.beat_targets))
        with self._cond:
            self.counters.header_bytes_sent += sent * len(frames[0])

    def _reject(self, reason: str) -> None:
        self.counters.messages_rejected += 1
        log.warning("rejected a message: %s", reason)

    def handle(self, frames: list[Any]) -> None:
        """Validates one received message and files it (or counts why not)."""
        try:
            msg = decode(frames, self.template, self.n_peers, self.params_template)
        except WireError as e:
            with self._cond:
                self._reject(str(e))
            return
        except Exception as e:  # a codec bug must not take the peer down: count and go on
            with self._cond:
                self._reject(f"could not be decoded ({type(e).__name__}: {e})")
            return
        with self._cond:
            if msg.kind == "bye":
                self.members.left(msg.sender)
            else:
                self.members.heard(msg.sender, msg.round,
                                   current=msg.kind in ("hello", "heartbeat", "state_request"),
                                   at=self.current)
            if msg.kind == "gossip":
                self._file(msg)
            elif msg.kind == "state_request":
                self.state_requests.add(msg.sender)
            elif msg.kind == "state":
                self._take_state(msg)
            self._cond.notify_all()

    def _file(self, msg: Message) -> None:
        where = f"from peer {msg.sender}, round {msg.round}"
        if msg.round < self.current:
            self.counters.messages_stale += 1
            log.info("stale message %s (now in round %d): dropped", where, self.current)
            return
        if msg.round > self.current + self.max_ahead:
            self.counters.messages_ahead += 1
            log.info("message %s is more than %d rounds ahead of round %d: dropped", where,
                     self.max_ahead, self.current)
            return
        expected = self._expected.get(msg.round)
        if expected is None or msg.sender not in expected:
            self._reject(f"{where}: not an in-neighbour in that round")
            return
        box = self._messages.setdefault(msg.round, {})
        if msg.sender in box:
            self._reject(f"{where}: duplicate")
            return
        box[msg.sender] = msg.payload
        self.counters.messages_received += 1
        self.counters.bytes_received += msg.payload_bytes
        self.counters.header_bytes_received += msg.header_bytes

    def _take_state(self, msg: Message) -> None:
        if msg.sender != self._state_from:
            self._reject(f"from peer {msg.sender}, round {msg.round}: state that was not "
                         "asked for")
            return
        self._state, self._state_from = msg, None
        self.counters.bytes_received += msg.payload_bytes
        self.counters.header_bytes_received += msg.header_bytes

    # -- main thread --------------------------------------------------------------------------

    def expect(self, round_: int, senders: set[int]) -> None:
        """Registers the in-neighbours whose messages round ``round_`` takes."""
        with self._cond:
            self._expected[round_] = senders

    def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        """Waits (holding the lock) until ``done()`` or ``timeout`` seconds have passed."""
        end = time.monotonic() + timeout
        while not done() and self.error is None:
            left = end - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(min(left, RECHECK_S))
        self._raise()

    def wait_hello(self, senders: set[int], timeout: float) -> set[int]:
        """Waits until every peer of ``senders`` was heard from, or ``timeout`` seconds.

        Returns:
            The peers of ``senders`` not heard from.
        """
        with self._cond:
            self._wait(lambda: all(self.members.alive(j) for j in senders), timeout)
            return {j for j in senders if not self.members.alive(j)}

    def wait_gone(self, peers: set[int], round_: int, timeout: float) -> None:
        """Waits until every peer of ``peers`` said bye or is no longer worth waiting for in
        round ``round_`` (dead or lagging), or ``timeout`` seconds."""
        with self._cond:
            self._wait(lambda: not any(self.members.waitable(j, round_) for j in peers), timeout)

    def wait_round(self, round_: int, timeout: float) -> dict[int, Any]:
        """Waits for the messages of round ``round_`` until all expected arrived or timeout.

        Only live, non-lagging peers are waited for. Moves the inbox on to the next round:
        later messages of this round count as stale.

        Returns:
            ``{sender: payload}`` of the messages that arrived.
        """
        with self._cond:
            expected = self._expected.get(round_, set())
            box = self._messages.setdefault(round_, {})
            self._wait(lambda: all(j in box for j in expected
                                   if self.members.waitable(j, round_)), timeout)
            self.counters.messages_missing += len(expected - box.keys())
            self.current = round_ + 1
            self._expected.pop(round_, None)
            return self._messages.pop(round_)

    def alive(self, peers: Iterable[int]) -> set[int]:
        """The peers of ``peers`` that are alive now."""
        with self._cond:
            return {j for j in peers if self.members.alive(j)}

    def isolated(self, peers: Iterable[int]) -> bool:
        """See ``Membership.isolated``."""
        with self._cond:
            return self.members.isolated(peers)

    def wait_contact(self, peers: set[int], timeout: float) -> bool:
        """Waits until one of ``peers`` is alive, or ``timeout`` seconds; True if one is."""
        with self._cond:
            self._wait(lambda: any(self.members.alive(j) for j in peers), timeout)
            return any(self.members.alive(j) for j in peers)

    def leader(self, peers: Iterable[int], round_: int) -> int | None:
        """See ``Membership.leader``."""
        with self._cond:
            return self.members.leader(peers, round_)

    def take_state_requests(self) -> set[int]:
        """The peers that asked for our parameters since the last call."""
        with self._cond:
            requests, self.state_requests = self.state_requests, set()
            return requests

    def state_requests_again(self, peers: set[int]) -> None:
        """Puts back the requests of ``peers`` (answering them failed: try next round)."""
        with self._cond:
            self.state_requests |= peers

    def expect_state(self, sender: int) -> None:
        """Accepts one ``"state"`` message from ``sender`` (call before asking for it)."""
        with self._cond:
            self._state_from, self._state = sender, None

    def wait_state(self, timeout: float) -> Message | None:
        """Waits for the state asked for with ``expect_state``; None after ``timeout``."""
        with self._cond:
            self._wait(lambda: self._state is not None, timeout)
            state, self._state, self._state_from = self._state, None, None
            return state

    def jump(self, round_: int, expected: dict[int, set[int]]) -> None:
        """Moves the inbox to ``round_`` (after catching up): earlier rounds are dropped.

        Args:
            round_: the new current round.
            expected: the senders of each round from ``round_`` on that is to be accepted.
        """
        with self._cond:
            self.current = round_
            self._expected = dict(expected)
            self._messages = {r: box for r, box in self._messages.items() if r >= round_}

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the receiving thread failed: {self.error!r}") from self.error
