"""The receiving side of a peer: a background thread that validates messages into an inbox.

The thread owns the ROUTER socket. Each message is decoded against the local template; a
valid gossip message is filed under its round if it comes from an expected in-neighbour of
that round and the round is neither past (stale: dropped and counted) nor more than
``max_ahead`` rounds ahead (rejected). The main thread registers the senders it expects
for the coming rounds, then waits for a round's messages until a deadline.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gossip.wire import Template, Transport, WireError, decode

log = logging.getLogger("gossip.peer")


@dataclasses.dataclass
class Counters:
    """Cumulative message and byte counts of one peer (written to its metrics file)."""

    messages_sent: int = 0
    send_failures: int = 0
    messages_received: int = 0
    messages_missing: int = 0
    messages_rejected: int = 0
    messages_stale: int = 0
    transport_disconnects: int = 0
    bytes_sent: int = 0
    header_bytes_sent: int = 0
    bytes_received: int = 0
    header_bytes_received: int = 0


class Inbox:
    """Validated messages by round, filled by a receiving thread.

    Args:
        transport: the peer's sockets (the thread uses only its ROUTER).
        template: the payload structure every gossip message must match.
        n_peers: number of peers.
        max_ahead: how many rounds ahead of the current one a message may be.
        counters: where receive-side counts go.
    """

    def __init__(self, transport: Transport, template: Template, n_peers: int, max_ahead: int,
                 counters: Counters) -> None:
        self.transport = transport
        self.template = template
        self.n_peers = n_peers
        self.max_ahead = max_ahead
        self.counters = counters
        self.current = 0
        self.hello: set[int] = set()
        self.gone: set[int] = set()
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
        try:
            while not self._stop.is_set():
                frames, disconnects = self.transport.poll(50)
                if disconnects:
                    with self._cond:
                        self.counters.transport_disconnects += disconnects
                    log.info("%d connection(s) closed by the transport (peer left, or sent a "
                             "frame over MAXMSGSIZE=%d bytes)", disconnects,
                             self.template.max_frame_bytes)
                if frames is not None:
                    self.handle(frames)
        except BaseException as e:  # surfaced to the main thread by ``wait``
            self.error = e
            with self._cond:
                self._cond.notify_all()

    def _reject(self, reason: str) -> None:
        self.counters.messages_rejected += 1
        log.warning("rejected a message: %s", reason)

    def handle(self, frames: list[Any]) -> None:
        """Validates one received message and files it (or counts why not)."""
        try:
            msg = decode(frames, self.template, self.n_peers)
        except WireError as e:
            with self._cond:
                self._reject(str(e))
            return
        except Exception as e:  # a codec bug must not take the peer down: count and go on
            with self._cond:
                self._reject(f"could not be decoded ({type(e).__name__}: {e})")
            return
        with self._cond:
            if msg.kind == "hello":
                self.hello.add(msg.sender)
                self.gone.discard(msg.sender)
            elif msg.kind == "bye":
                self.gone.add(msg.sender)
            else:
                self._file(msg)
            self._cond.notify_all()

    def _file(self, msg: Any) -> None:
        where = f"from peer {msg.sender}, round {msg.round}"
        if msg.round < self.current:
            self.counters.messages_stale += 1
            log.info("stale message %s (now in round %d): dropped", where, self.current)
            return
        if msg.round > self.current + self.max_ahead:
            self._reject(f"{where}: more than {self.max_ahead} rounds ahead of round "
                         f"{self.current}")
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
            self._cond.wait(left)
        self._raise()

    def wait_hello(self, senders: set[int], timeout: float) -> set[int]:
        """Waits until every peer of ``senders`` said hello, or ``timeout`` seconds.

        Returns:
            The peers of ``senders`` that have not said hello.
        """
        with self._cond:
            self._wait(lambda: senders <= self.hello, timeout)
            return senders - self.hello

    def wait_gone(self, senders: set[int], timeout: float) -> None:
        """Waits until every peer of ``senders`` said bye, or ``timeout`` seconds."""
        with self._cond:
            self._wait(lambda: senders <= self.gone, timeout)

    def wait_round(self, round_: int, timeout: float) -> dict[int, Any]:
        """Waits for the messages of round ``round_`` until all expected arrived or timeout.

        Peers that said bye are not waited for. Moves the inbox on to the next round:
        later messages of this round count as stale.

        Returns:
            ``{sender: payload}`` of the messages that arrived.
        """
        with self._cond:
            expected = self._expected.get(round_, set())
            box = self._messages.setdefault(round_, {})
            self._wait(lambda: expected - self.gone <= box.keys(), timeout)
            self.counters.messages_missing += len(expected - box.keys())
            self.current = round_ + 1
            self._expected.pop(round_, None)
            return self._messages.pop(round_)

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the receiving thread failed: {self.error!r}") from self.error
