"""The receiving side of a peer: a background thread that validates messages into an inbox.

The thread owns the ROUTER socket and the heartbeat sockets. Each message goes through, in
order: its header (``read_header``); its sender (never this peer's own id; under CURVE, the
peer whose key the connection was authenticated with); that sender's rate limit
(``Throttle``); then the leaves, against the local templates. A valid gossip message is
filed under its round if it comes from an expected in-neighbour of that round and the round
is neither past (stale: dropped and counted) nor more than ``max_ahead`` rounds ahead
(dropped and counted as ahead), at most one per sender and round: so a sender never has more
than ``max_ahead + 1`` messages (and their bytes) queued. A round a sender claims is
believed only when it is possible (``Membership.plausible``). Every drop is counted under a
named reason (``Counters``). Every valid message updates the ``Membership`` (who is alive, in
which round). Every ``heartbeat_interval`` seconds the thread sends a heartbeat with the
current round to the peers in ``beat_targets``, and it answers state requests at once with
the parameters the main thread last published. The main thread registers the senders it
expects for the coming rounds, waits for a round's messages until a deadline (never for a
dead, departed or lagging neighbour), and asks for state when it lags behind.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax

from gossip.peer.membership import SPEEDUP, Membership
from gossip.peer.throttle import Throttle
from gossip.wire import (
    PAYLOAD_KINDS,
    Message,
    Template,
    Transport,
    WireError,
    decode,
    encode,
    read_header,
)

log = logging.getLogger("gossip.peer")
RECHECK_S = 0.05  # how often a wait re-reads liveness (neighbours die while we wait)
ANSWER_S = 5.0  # how long the thread keeps trying to send a state answer (peer unreachable)
LOG_PER_S = 20  # rejections logged per second at most; the rest are counted, and summed up

# Why a message was rejected: each has a counter ``rejected_<reason>``; their sum is
# ``messages_rejected``.
REJECTIONS = {
    "malformed": "failed a check of the wire format (docs/protocol.md, checks on receipt)",
    "own_id": "carried this peer's own id as its sender",
    "spoofed": "header sender differs from the peer whose CURVE key it came with",
    "implausible": "claimed a round no peer can be in yet",
    "not_neighbour": "gossip from a peer that is not an in-neighbour in that round",
    "duplicate": "a second gossip message from one sender for one round",
    "unasked_state": "a state message that was not asked for",
    "state_round": "a state message for a round outside (current round, rounds)",
}


@dataclasses.dataclass
class Counters:
    """Cumulative message and byte counts of one peer (written to its metrics file).

    ``docs/peers.md`` (Output files) says what each counts; every dropped message is in
    exactly one of ``rejected_*``, ``messages_stale``, ``messages_ahead`` and
    ``messages_throttled``.
    """

    messages_sent: int = 0
    send_failures: int = 0
    messages_received: int = 0
    messages_missing: int = 0
    messages_rejected: int = 0
    rejected_malformed: int = 0
    rejected_own_id: int = 0
    rejected_spoofed: int = 0
    rejected_implausible: int = 0
    rejected_not_neighbour: int = 0
    rejected_duplicate: int = 0
    rejected_unasked_state: int = 0
    rejected_state_round: int = 0
    messages_stale: int = 0
    messages_ahead: int = 0
    messages_throttled: int = 0
    transport_disconnects: int = 0
    bytes_sent: int = 0
    header_bytes_sent: int = 0
    bytes_received: int = 0
    header_bytes_received: int = 0
    catch_ups: int = 0
    catch_up_failures: int = 0
    mixes_discarded: int = 0
    local_divergences: int = 0
    messages_superseded: int = 0

    def reject(self, reason: str) -> None:
        """Counts one rejected message under ``reason`` (a key of ``REJECTIONS``)."""
        setattr(self, f"rejected_{reason}", getattr(self, f"rejected_{reason}") + 1)
        self.messages_rejected += 1


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
        peer_id: this peer's id (default: the transport's; None: no own-id check).
    """

    def __init__(self, transport: Transport | None, template: Template, n_peers: int,
                 max_ahead: int, counters: Counters, membership: Membership | None = None,
                 params_template: Template | None = None,
                 heartbeat_interval: float | None = None, peer_id: int | None = None) -> None:
        self.transport = transport
        self.template = template
        self.params_template = params_template
        self.n_peers = n_peers
        self.max_ahead = max_ahead
        self.counters = counters
        self.members = membership or Membership(timeout=5.0, catchup_after=3)
        self.heartbeat_interval = heartbeat_interval
        self.peer_id = peer_id if peer_id is not None or transport is None else transport.peer_id
        self.beat_targets: frozenset[int] = frozenset()
        self.current = 0
        beat = heartbeat_interval or 1.0
        # Header-only kinds: a heartbeat a second is honest; payload kinds: one per round.
        self.throttles = {False: Throttle(rate=4.0 / beat, burst=16, per_round=2),
                          True: Throttle(rate=1.0 / beat, burst=2 * (max_ahead + 2),
                                         per_round=2)}
        self.state_requests: dict[int, float] = {}  # requester -> give up answering after
        self._published: tuple[int, Any] | None = None  # (round, params) to answer with
        self._state_from: int | None = None
        self._state: Message | None = None
        self._state_refused = False
        self._asked: int | None = None
        self._log_budget, self._log_refill, self._unlogged = LOG_PER_S, time.monotonic(), 0
        self._expected: dict[int, set[int]] = {}
        self._messages: dict[int, dict[int, Any]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gossip-receiver", daemon=True)
        self.error: BaseException | None = None
        # Asynchronous mode (``go_async``): the newest message per sender, not per round.
        self._async_senders: frozenset[int] | None = None
        self._final_round = 0
        self._latest: dict[int, tuple[int, Any]] = {}  # sender -> (round, payload)
        self._taken: dict[int, int] = {}  # sender -> round of the newest message taken
        self.finished: set[int] = set()  # senders whose final message arrived

    def go_async(self, senders: Iterable[int], final_round: int) -> None:
        """Switches to asynchronous mode (no rounds, ``gossip.peer.asynchronous``).

        A gossip message from a peer of ``senders`` (the static in-neighbours) is kept as
        that sender's newest until the main thread takes it (``take_latest``): a newer one
        replaces it (``messages_superseded``: a running sum carries what it replaced), an
        older one than a message already taken is dropped (``messages_stale``: a sender
        restarted from a checkpoint repeats rounds). A message with round ``final_round``
        is the sender's last (``finished``); a round above it is refused (implausible).
        The payload throttle allows ``2 * SPEEDUP`` messages per round of this peer, as a
        neighbour may step that much faster.
        """
        with self._cond:
            self._async_senders = frozenset(senders)
            self._final_round = final_round
            self.throttles[True] = Throttle(rate=self.throttles[True].rate, burst=4 * SPEEDUP,
                                            per_round=2 * SPEEDUP)

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
                             disconnects, self.transport.max_frame_bytes)
                if frames is not None:
                    self.handle(frames, self.transport.sender_of(frames))
                if self.state_requests:
                    self._answer()
        except BaseException as e:  # surfaced to the main thread by ``wait``
            self.error = e
            with self._cond:
                self._cond.notify_all()

    def _beat(self) -> None:
        frames = encode("heartbeat", self.transport.peer_id, self.current, self.template)
        sent = sum(self.transport.send(j, frames, beat=True)  # False: queue full, peer away
                   for j in sorted(self.beat_targets))
        for j in self.beat_targets:  # a state answer to a neighbour finds its link up
            self.transport.connect(j, answer=True)
        with self._cond:
            self.counters.header_bytes_sent += sent * len(frames[0])

    def _reject(self, reason: str, why: str) -> None:
        """Counts a rejection; logs it, at most ``LOG_PER_S`` lines a second (a flood of
        garbage must not become a flood of log lines)."""
        self.counters.reject(reason)
        now = time.monotonic()
        if now - self._log_refill >= 1.0:
            if self._unlogged:
                log.warning("%d more message(s) rejected and counted, not logged",
                            self._unlogged)
            self._log_budget, self._log_refill, self._unlogged = LOG_PER_S, now, 0
        if self._log_budget > 0:
            self._log_budget -= 1
            log.warning("rejected a message: %s", why)
        else:
            self._unlogged += 1

    def handle(self, frames: list[Any], authenticated: int | None = None) -> None:
        """Validates one received message and files it (or counts why not); never raises.

        Args:
            frames: the message's frames, header first.
            authenticated: the peer whose CURVE key the message came with (None: no CURVE).
        """
        try:
            header = read_header(frames, self.template, self.n_peers, self.params_template)
            where = f"from peer {header.sender}, round {header.round}"
            with self._cond:
                if header.sender == self.peer_id:
                    self._reject("own_id", f"{where}: a {header.kind!r} message with this "
                                 "peer's own id")
                    return
                if self.transport is not None and self.transport.curve is not None \
                        and authenticated != header.sender:
                    self._reject("spoofed", f"{where}: sent with the CURVE key of peer "
                                 f"{authenticated}")
                    return
                if not self.throttles[header.kind in PAYLOAD_KINDS].allow(header.sender):
                    self.counters.messages_throttled += 1
                    log.info("message %s throttled: the sender sends faster than the "
                             "protocol allows", where)
                    return
            msg = decode(frames, self.template, self.n_peers, self.params_template, header)
        except WireError as e:
            with self._cond:
                self._reject("malformed", str(e))
            return
        except Exception as e:  # a codec bug must not take the peer down: count and go on
            with self._cond:
                self._reject("malformed", f"could not be decoded ({type(e).__name__}: {e})")
            return
        with self._cond:
            self._take(msg)
            self._cond.notify_all()

    def _take(self, msg: Message) -> None:
        where = f"from peer {msg.sender}, round {msg.round}"
        if msg.kind == "bye":
            self.members.left(msg.sender)
        elif msg.kind == "gossip" and self._async_senders is not None:
            self._file_latest(msg)
        elif msg.kind == "gossip":
            self._file(msg)
        elif msg.kind == "state":
            self._take_state(msg)
        elif not self.members.plausible(msg.round):  # hello, heartbeat, state_request
            self._reject("implausible", f"{where}: a {msg.kind!r} claiming a round no peer "
                         f"can be in yet (at most {self.members.limit():.0f} now)")
        else:
            self.members.heard(msg.sender, msg.round, current=True, at=self.current)
            if msg.kind == "state_request":
                self.state_requests[msg.sender] = time.monotonic() + ANSWER_S

    def _file(self, msg: Message) -> None:
        where = f"from peer {msg.sender}, round {msg.round}"
        if msg.round < self.current:
            self.members.heard(msg.sender, msg.round, current=False, at=self.current)
            self.counters.messages_stale += 1
            log.info("stale message %s (now in round %d): dropped", where, self.current)
            return
        if msg.round > self.current + self.max_ahead:
            self.members.seen(msg.sender)  # alive, but a dropped claim says nothing of its round
            self.counters.messages_ahead += 1
            log.info("message %s is more than %d rounds ahead of round %d: dropped", where,
                     self.max_ahead, self.current)
            return
        self.members.heard(msg.sender, msg.round, current=False, at=self.current)
        expected = self._expected.get(msg.round)
        if expected is None or msg.sender not in expected:
            self._reject("not_neighbour", f"{where}: not an in-neighbour in that round")
            return
        box = self._messages.setdefault(msg.round, {})
        if msg.sender in box:
            self._reject("duplicate", f"{where}: duplicate")
            return
        box[msg.sender] = msg.payload
        self.counters.messages_received += 1
        self.counters.bytes_received += msg.payload_bytes
        self.counters.header_bytes_received += msg.header_bytes

    def _file_latest(self, msg: Message) -> None:
        """Asynchronous mode: keeps ``msg`` as its sender's newest message (``go_async``)."""
        where = f"from peer {msg.sender}, round {msg.round}"
        if msg.sender not in self._async_senders:
            self._reject("not_neighbour", f"{where}: not an in-neighbour")
            return
        if msg.round > self._final_round:
            self._reject("implausible", f"{where}: past the run's {self._final_round} rounds")
            return
        self.members.heard(msg.sender, msg.round, current=False, at=self.current)
        held = self._latest.get(msg.sender)
        newest = max(self._taken.get(msg.sender, -1), held[0] if held else -1)
        if msg.round <= newest:
            self.counters.messages_stale += 1
            log.info("message %s is not newer than round %d, already had: dropped", where,
                     newest)
            return
        if held is not None:
            self.counters.messages_superseded += 1
        self._latest[msg.sender] = (msg.round, msg.payload)
        if msg.round == self._final_round:
            self.finished.add(msg.sender)
        self.counters.messages_received += 1
        self.counters.bytes_received += msg.payload_bytes
        self.counters.header_bytes_received += msg.header_bytes

    def take_latest(self, current: int) -> dict[int, tuple[int, Any]]:
        """Asynchronous mode: the newest message of each sender since the last call, as
        ``{sender: (round, payload)}``; this peer is now in round ``current`` (heartbeats
        say so, and the throttle refills)."""
        with self._cond:
            latest, self._latest = self._latest, {}
            self._taken.update({j: r for j, (r, _) in latest.items()})
            self.current = current
            self.throttles[True].new_round()
            self._raise()
            return latest

    def finished_now(self) -> frozenset[int]:
        """Asynchronous mode: the senders whose last message has arrived so far. Read before
        a ``take_latest``, it names senders whose last message that take (or an earlier
        one) returns; read after, a last message may have arrived in between, untaken."""
        with self._cond:
            return frozenset(self.finished)

    def wait_latest(self, senders: set[int], timeout: float) -> None:
        """Asynchronous mode: waits until a message is held, or every peer of ``senders``
        has finished or is gone (dead, or said bye), or ``timeout`` seconds."""
        with self._cond:
            self._wait(lambda: bool(self._latest) or all(
                j in self.finished or not self.members.alive(j) for j in senders), timeout)

    def wait_left(self, peers: set[int], timeout: float) -> None:
        """Waits until no peer of ``peers`` is alive (each said bye, or went silent), or
        ``timeout`` seconds."""
        with self._cond:
            self._wait(lambda: not any(self.members.alive(j) for j in peers), timeout)

    def _take_state(self, msg: Message) -> None:
        where = f"from peer {msg.sender}, round {msg.round}"
        if msg.sender != self._state_from:
            self._reject("unasked_state", f"{where}: state that was not asked for")
            return
        self._state_from = None
        total = self.members.total_rounds
        if not (self.current < msg.round and (total is None or msg.round < total)
                and self.members.plausible(msg.round)):
            self._state_refused = True
            self._reject("state_round", f"{where}: state for a round outside ({self.current}, "
                         f"{total}) or not yet possible")
            if msg.round <= self.current:  # its real round: it is not ahead after all
                self.members.heard(msg.sender, msg.round, current=True, at=self.current)
            return
        self.members.heard(msg.sender, msg.round, current=True, at=self.current)
        self._state = msg
        self.counters.bytes_received += msg.payload_bytes
        self.counters.header_bytes_received += msg.header_bytes

    def _answer(self) -> None:
        """Sends the published parameters to every peer that asked (receiving thread)."""
        with self._cond:
            published, requests = self._published, dict(self.state_requests)
        if published is None:
            return
        round_, params = published
        frames = encode("state", self.transport.peer_id, round_, self.params_template,
                        jax.device_get(params))
        now = time.monotonic()
        for j, give_up in requests.items():
            sent = self.transport.send(j, frames, answer=True)
            if sent or now > give_up:
                with self._cond:
                    self.state_requests.pop(j, None)
                    if sent:
                        self.counters.bytes_sent += self.params_template.nbytes
                        self.counters.header_bytes_sent += len(frames[0])
                    else:
                        self.counters.send_failures += 1
                if sent:
                    log.info("sent round-%d parameters to catching-up peer %d", round_, j)

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
            for throttle in self.throttles.values():
                throttle.new_round()
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

    def publish(self, round_: int, params: Any) -> None:
        """The parameters round ``round_`` starts from: what state requests are answered
        with, at once, by the receiving thread (the arrays are only referenced)."""
        with self._cond:
            self._published = (round_, params)

    def begin(self, round_: int) -> None:
        """The round loop starts at ``round_`` now: how far others can be is counted from
        here (start-up and compilation do not count)."""
        with self._cond:
            self.members.start(round_)

    def ran(self, seconds: float) -> None:
        """Records that one of this peer's rounds took ``seconds`` (see ``Membership``)."""
        with self._cond:
            self.members.ran(seconds)

    def expect_state(self, sender: int) -> None:
        """Accepts one ``"state"`` message from ``sender`` (call before asking for it)."""
        with self._cond:
            self._state_from, self._state, self._state_refused = sender, None, False
            self._asked = sender

    def wait_state(self, timeout: float) -> Message | None:
        """Waits for the state asked for with ``expect_state``, at most ``timeout`` seconds.

        Returns:
            The state message (its round is after the current one, before the run's end,
            and possible), or None: nothing came in time, or what came was refused. Either
            way the peer asked is never asked again (``Membership.no_answer``).
        """
        with self._cond:
            asked, self._asked = self._asked, None
            self._wait(lambda: self._state is not None or self._state_refused, timeout)
            state, self._state, self._state_from = self._state, None, None
            if state is None and asked is not None:
                self.members.no_answer(asked)
            return state

    def jump(self, round_: int, expected: dict[int, set[int]]) -> None:
        """Moves the inbox to ``round_`` (after catching up): earlier rounds are dropped.

        Args:
            round_: the new current round.
            expected: the senders of each round from ``round_`` on that is to be accepted.
        """
        with self._cond:
            self.current = round_
            self.members.start(round_)
            self.throttles[True].new_round()
            self._expected = dict(expected)
            self._messages = {r: box for r, box in self._messages.items() if r >= round_}

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the receiving thread failed: {self.error!r}") from self.error
