"""``gossip launch --local N``: N peer processes on this machine, one progress bar, one summary.

The launcher validates the config first (nothing starts on a bad one), picks free loopback
ports, writes ``OUT/peers.txt`` and ``OUT/config.toml``, and starts ``gossip peer`` N times,
each in its own session and logging to ``OUT/logs/peer-XXXX.log``. It follows the peers'
metrics files for the progress bar. Ctrl-C, SIGTERM, or the launcher's own death stops every
peer (SIGTERM, then SIGKILL after a grace period). At the end it evaluates the peers' final
parameters together (average model, consensus distance) and prints the same summary as
``gossip sim``; it exits 1 when any peer failed, naming it and quoting its last log line.

Also the pieces every launcher shares (``gossip launch --hostfile`` in
:mod:`gossip.launch.ssh`): :class:`Child`, :func:`supervise` (start, follow, always
stop), :func:`terminate` and :func:`report` (failure lines, summary).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gossip.config import Config
from gossip.launch.keys import launch_keys
from gossip.outputs import make_out

GRACE_S = 5.0
POLL_S = 0.2
_PR_SET_PDEATHSIG = 1


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports free on ``host`` right now (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def die_with_parent() -> None:  # runs in the child between fork and exec
    """``preexec_fn``: the child gets SIGTERM when the launcher dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Stopped(Exception):
    """Raised by the launcher's SIGTERM handler."""


@dataclasses.dataclass
class Child:
    """One started process that runs a peer: the peer itself, or the ssh that runs it.

    Attributes:
        peer: the peer's id.
        proc: the process.
        log: the file its stderr (and other output) goes to.
        host: where the peer runs, for messages; None for this machine.
        rounds_done: the highest round the peer reported.
    """

    peer: int
    proc: subprocess.Popen
    log: Path
    host: str | None = None
    rounds_done: int = 0

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

    def failure(self) -> str:
        """The line that reports this peer's failure."""
        where = f" on host {self.host}" if self.host else ""
        return (f"gossip launch: peer {self.peer}{where} failed (exit code "
                f"{self.proc.returncode}): {self.last_log_line()}  [log: {self.log}]")


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


def prepare_out(out: Path, n: int | None = None) -> None:
    """Creates ``out/logs``, removes the peer files of an earlier run in ``out``, and says
    (on stderr, before any peer starts) where the run's files and the peers' logs go.

    Args:
        out: the run directory.
        n: the number of peers, for the message.

    Raises:
        ConfigError: ``out`` cannot be created (one line).
    """
    make_out(out / "logs")
    for old in (*out.glob("peer-*.jsonl"), *out.glob("params/peer-*.npz"),
                *out.glob("checkpoints/peer-*.npz"), *out.glob("curves.png")):
        old.unlink()
    count = f"{n} peers" if n else "the peers"
    print(f"gossip launch: starting {count}; run directory {out}, their logs in "
          f"{out / 'logs'}/peer-XXXX.log (the progress bar moves once they finish a round)",
          file=sys.stderr, flush=True)


def supervise(n: int, rounds: int, progress: bool, start: Callable[[list[Child]], None],
              follow: Callable[[list[Child]], int],
              stop: Callable[[list[Child]], None] = terminate) -> tuple[int, list[Child]]:
    """Starts the children, shows their progress until all have exited, always stops them.

    Args:
        n: number of peers.
        rounds: rounds per peer.
        progress: show the progress bar.
        start: appends the started children to the list it is given.
        follow: waits about ``POLL_S`` seconds for news; returns the rounds newly completed.
        stop: stops whatever still runs (also after a normal end, when nothing does).

    Returns:
        ``(status, children)``: status 0, or 130/143 when stopped by SIGINT/SIGTERM.
    """

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    children: list[Child] = []
    status = 0
    bar = tqdm(total=n * rounds, desc=f"gossip launch ({n} peers)", unit="round",
               disable=not progress)
    try:
        start(children)
        running = True
        while running:
            running = any(c.proc.poll() is None for c in children)
            done = follow(children)
            if done:
                bar.update(done)
    except KeyboardInterrupt:
        status = 130
    except Stopped:
        status = 143
    finally:
        stop(children)
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    return status, children


def report(status: int, children: list[Child], exp: Any, out: Path, wall_time: float,
           plot: bool = True) -> int:
    """Prints how the run ended and, unless it was stopped, the summary of its parameters
    (and draws ``OUT/curves.png`` when ``plot``).

    Returns:
        The launcher's exit status: ``status`` when stopped, else 1 when a peer failed, else 0.
    """
    if status:
        print(f"gossip launch: stopped; all {len(children)} peers terminated", file=sys.stderr)
        return status
    failed = [c for c in children if c.proc.returncode != 0]
    for c in failed:
        print(c.failure(), file=sys.stderr)
    from gossip.launch.results import summarise_run

    summarise_run(exp, out, wall_time, plot=plot)
    return 1 if failed else 0


class _MetricsFiles:
    """``follow`` of local peers: reads the new complete lines of their metrics files."""

    def __init__(self, out: Path):
        self.out = out
        self.offsets: dict[int, int] = {}

    def __call__(self, children: list[Child]) -> int:
        time.sleep(POLL_S)
        return sum(c.count(self._new_lines(c.peer)) for c in children)

    def _new_lines(self, peer: int) -> list[bytes]:
        offset = self.offsets.get(peer, 0)
        try:
            with (self.out / f"peer-{peer:04d}.jsonl").open("rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offsets[peer] = offset + len(complete)
        return complete.splitlines()


def peer_command(peer: int, out: Path, log_level: str, keys: Path | None = None) -> list[str]:
    """The command line of one local peer (``--keys keys`` when given)."""
    return [sys.executable, "-m", "gossip", "peer", "--id", str(peer),
            "--peers", str(out / "peers.txt"), "--config", str(out / "config.toml"),
            "--log-level", log_level, *(["--keys", str(keys)] if keys else [])]


def launch_local(config: Config, progress: bool = True, log_level: str = "warning",
                 keys: str | None = None, plot: bool = True) -> int:
    """Runs ``config.peers`` peers on this machine; see the module docstring.

    Args:
        config: the run's config.
        progress: show the progress bar.
        log_level: the peers' log level.
        keys: ``--keys``: a directory of CURVE keys, or ``"auto"`` (fresh ones in
            ``OUT/keys``); None: no encryption (:func:`gossip.launch.keys.launch_keys`).
        plot: draw ``OUT/curves.png`` at the end.

    Returns:
        The exit status: 0 when every peer finished, 1 when one failed, 130/143 when stopped
        by SIGINT/SIGTERM.
    """
    from gossip.experiment import build_experiment  # validates everything before any start

    exp = build_experiment(config)
    n, out = config.peers, Path(config.out)
    prepare_out(out, n)
    keys_dir = launch_keys(keys, out, n) if keys else None
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(n)]
    (out / "peers.txt").write_text("".join(a + "\n" for a in addresses))
    (out / "config.toml").write_text(dataclasses.replace(config, save_params=True).to_toml())

    def start(children: list[Child]) -> None:
        for i in range(n):
            log = out / "logs" / f"peer-{i:04d}.log"
            with log.open("w") as sink:
                proc = subprocess.Popen(peer_command(i, out, log_level, keys_dir),
                                        stdout=sink, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL,
                                        start_new_session=True, preexec_fn=die_with_parent)
            children.append(Child(i, proc, log))

    begin = time.perf_counter()
    status, children = supervise(n, config.rounds, progress, start, _MetricsFiles(out))
    return report(status, children, exp, out, time.perf_counter() - begin, plot=plot)
