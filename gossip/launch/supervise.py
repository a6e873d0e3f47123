"""Starting, following, restarting and stopping the peer processes of one launch.

Every launcher (``gossip launch --local`` in :mod:`gossip.launch.local`, ``--hostfile`` in
:mod:`gossip.launch.ssh`) hands :func:`supervise` how to start its children (the peers
themselves, or the ssh processes that run them), how to follow their progress and how to
stop them; :func:`supervise` shows one progress bar until every child has exited, restarts
a child that failed (``--restarts K``: at most K times per peer, each with ``--resume``,
after a back-off of :func:`restart_delay`), and always stops whatever still runs, also on
Ctrl-C or SIGTERM. :func:`report` then prints how the run ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

GRACE_S = 5.0  # after SIGTERM, time a child gets before SIGKILL
POLL_S = 0.2  # how often the children are looked at
RESTART_DELAY_S = 1.0  # back-off before a peer's first restart; doubles for each next one
RESTART_DELAY_MAX_S = 30.0
SSH_FAILED = 255  # ssh's exit code for its own errors, and for a remote command killed by a signal
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # runs in the child between fork and exec
    """``preexec_fn``: the child gets SIGTERM when the launcher dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def restart_delay(restarts_done: int) -> float:
    """Seconds to wait before restarting a peer already restarted ``restarts_done`` times:
    1, 2, 4, ... at most 30."""
    return min(RESTART_DELAY_S * 2 ** restarts_done, RESTART_DELAY_MAX_S)


class Stopped(Exception):
    """Raised by the launcher's SIGTERM handler."""


@dataclasses.dataclass
class Child:
    """One started process that runs a peer: the peer itself, or the ssh that runs it.

    Attributes:
        peer: the peer's id.
        proc: the process (the latest one, after restarts).
        log: the file its stderr (and other output) goes to.
        host: where the peer runs, for messages; None for this machine.
        rounds_done: the highest round the peer reported.
        restarts: how many times it was restarted.
        failures: the exit codes of its failed runs, oldest first.
        signalled: the launcher sent its process SIGTERM or SIGKILL (it did not exit alone).
    """

    peer: int
    proc: subprocess.Popen
    log: Path
    host: str | None = None
    rounds_done: int = 0
    restarts: int = 0
    failures: list[int] = dataclasses.field(default_factory=list)
    signalled: bool = False

    def count(self, records: Iterable[bytes | str]) -> int:
        """Takes metrics records (JSON lines); returns the newly completed rounds."""
        before = self.rounds_done
        for line in records:
            self.rounds_done = max(self.rounds_done, json.loads(line)["round"])
        return self.rounds_done - before

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def where(self) -> str:
        """``peer 2`` or ``peer 2 on host gpu-box``."""
        return f"peer {self.peer}" + (f" on host {self.host}" if self.host else "")

    def failure(self) -> str:
        """The line that reports this peer's failure."""
        why = self.last_log_line()
        if self.host and self.proc.returncode == SSH_FAILED and why == "(empty log)":
            why = "(no message: ssh lost its connection, or the peer was killed by a signal)"
        return (f"gossip launch: {self.where()} failed (exit code {self.proc.returncode}): "
                f"{why}  [log: {self.log}]")


def terminate(children: list[Child], patience: float = 0.0) -> None:
    """Stops every live child's process group: SIGTERM, then SIGKILL after a grace.

    Args:
        children: the started children.
        patience: seconds to let them exit on their own first.
    """
    end = time.monotonic() + patience
    for c in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            c.proc.wait(timeout=max(0.0, end - time.monotonic()))
    live = [c for c in children if c.proc.poll() is None]
    for c in live:
        c.signalled = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(c.proc.pid, signal.SIGTERM)
    end = time.monotonic() + GRACE_S
    for c in live:
        try:
            c.proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()


class _Restarts:
    """Which failed children to restart, and when."""

    def __init__(self, limit: int, restart: Callable[[Child], None] | None):
        self.limit = limit if restart else 0
        self.restart = restart
        self.due: dict[int, float] = {}  # peer -> monotonic time of its restart

    def check(self, children: list[Child]) -> None:
        """Schedules the restart of every child that just failed and may be restarted."""
        now = time.monotonic()
        for c in children:
            code = c.proc.poll()
            if code in (None, 0) or c.peer in self.due or c.restarts >= self.limit:
                continue
            delay = restart_delay(c.restarts)
            c.failures.append(code)
            self.due[c.peer] = now + delay
            tqdm.write(f"{c.failure()}; restarting it with --resume in {delay:g} s "
                       f"(restart {c.restarts + 1} of {self.limit})", file=sys.stderr)

    def start_due(self, children: list[Child]) -> None:
        """Restarts the children whose back-off has passed."""
        now = time.monotonic()
        for c in children:
            if self.due.get(c.peer, now + 1) <= now:
                del self.due[c.peer]
                c.restarts += 1
                self.restart(c)


def supervise(n: int, rounds: int, progress: bool, start: Callable[[list[Child]], None],
              follow: Callable[[list[Child]], int],
              stop: Callable[[list[Child]], None] = terminate,
              restart: Callable[[Child], None] | None = None,
              max_restarts: int = 0) -> tuple[int, list[Child]]:
    """Starts the children, shows their progress until all have exited, always stops them.

    Args:
        n: number of peers.
        rounds: rounds per peer.
        progress: show the progress bar.
        start: appends the started children to the list it is given.
        follow: waits about ``POLL_S`` seconds for news; returns the rounds newly completed.
        stop: stops whatever still runs (also after a normal end, when nothing does).
        restart: starts a failed child's peer again, with ``--resume`` (replaces its
            ``proc``); None: failed children stay failed.
        max_restarts: how many times each peer may be restarted.

    Returns:
        ``(status, children)``: status 0, or 130/143 when stopped by SIGINT/SIGTERM.
    """

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    children: list[Child] = []
    restarts = _Restarts(max_restarts, restart)
    status = 0
    bar = tqdm(total=n * rounds, desc=f"gossip launch ({n} peers)", unit="round",
               disable=not progress)
    try:
        start(children)
        running = True
        while running:
            restarts.start_due(children)
            # Looked at in this order, no failure goes unseen: a child found running is
            # looked at again in the next pass, one found exited is checked now.
            alive = any(c.proc.poll() is None for c in children)
            restarts.check(children)
            running = alive or bool(restarts.due)
            done = follow(children)
            if done:
                bar.update(done)
        if all(c.proc.returncode == 0 for c in children):
            # Every peer finished; async peers may stop short of ``rounds`` (when their
            # in-neighbours have), so the bar ends at what they did.
            bar.total = bar.n
            bar.refresh()
    except KeyboardInterrupt:
        status = 130
    except Stopped:
        status = 143
    finally:
        stop(children)
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    return status, children


def restart_line(children: list[Child]) -> str | None:
    """``gossip launch: restarts: peer 2 1 (exit code -9), ...``, or None without restarts."""
    restarted = [c for c in children if c.restarts]
    if not restarted:
        return None
    return "gossip launch: restarts: " + ", ".join(
        f"{c.where()} {c.restarts} (exit code{'s' if len(c.failures) > 1 else ''} "
        f"{', '.join(map(str, c.failures))})" for c in restarted)


def report(status: int, children: list[Child], exp: Any, out: Path, wall_time: float,
           plot: bool = True) -> int:
    """Prints how the run ended and, unless it was stopped, the summary of its parameters
    (and draws ``OUT/curves.png`` when ``plot``).

    The summary (``OUT/metrics.jsonl``) counts each peer's restarts.

    Returns:
        The launcher's exit status: ``status`` when stopped, else 1 when a peer failed, else 0.
    """
    line = restart_line(children)
    if line:
        print(line, file=sys.stderr)
    if status:
        print(f"gossip launch: stopped; all {len(children)} peers terminated", file=sys.stderr)
        return status
    failed = [c for c in children if c.proc.returncode != 0]
    for c in failed:
        print(c.failure(), file=sys.stderr)
    from gossip.launch.results import summarise_run

    restarts = {c.peer: c.restarts for c in children}
    summarise_run(exp, out, wall_time, plot=plot,
                  restarts=[restarts.get(i, 0) for i in range(exp.config.peers)])
    return 1 if failed else 0
