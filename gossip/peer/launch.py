"""``gossip launch --local N``: N peer processes on this machine, one progress bar, one summary.

The launcher validates the config first (nothing starts on a bad one), picks free loopback
ports, writes ``OUT/peers.txt`` and ``OUT/config.toml``, and starts ``gossip peer`` N times,
each in its own session and logging to ``OUT/logs/peer-XXXX.log``. It follows the peers'
metrics files for the progress bar. Ctrl-C, SIGTERM, or the launcher's own death stops every
peer (SIGTERM, then SIGKILL after a grace period). At the end it evaluates the peers' final
parameters together (average model, consensus distance) and prints the same summary as
``gossip sim``; it exits 1 when any peer failed, naming it and quoting its last log line.
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
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gossip.config import Config

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


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Stop(Exception):
    """Raised by the launcher's SIGTERM handler."""


@dataclasses.dataclass
class _Child:
    peer: int
    proc: subprocess.Popen
    log: Path
    metrics: Path
    rounds_done: int = 0
    offset: int = 0

    def follow(self) -> int:
        """Reads new lines of the peer's metrics file; returns the newly completed rounds."""
        try:
            with self.metrics.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        before = self.rounds_done
        for line in complete.splitlines():
            self.rounds_done = max(self.rounds_done, json.loads(line)["round"])
        return self.rounds_done - before

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"


def _terminate(children: list[_Child]) -> None:
    """SIGTERM to every live peer's process group, SIGKILL to what is left after a grace."""
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


def peer_command(peer: int, out: Path, log_level: str) -> list[str]:
    """The command line of one local peer."""
    return [sys.executable, "-m", "gossip", "peer", "--id", str(peer),
            "--peers", str(out / "peers.txt"), "--config", str(out / "config.toml"),
            "--log-level", log_level]


def launch_local(config: Config, progress: bool = True, log_level: str = "warning") -> int:
    """Runs ``config.peers`` peers on this machine; see the module docstring.

    Returns:
        The exit status: 0 when every peer finished, 1 when one failed, 130/143 when stopped
        by SIGINT/SIGTERM.
    """
    from sims.experiment import build_experiment  # validates everything before any start

    exp = build_experiment(config)
    n, out = config.peers, Path(config.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for old in (*out.glob("peer-*.jsonl"), *out.glob("params/peer-*.npz")):
        old.unlink()
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(n)]
    (out / "peers.txt").write_text("".join(a + "\n" for a in addresses))
    (out / "config.toml").write_text(dataclasses.replace(config, save_params=True).to_toml())

    def on_sigterm(signum: int, frame: Any) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    children: list[_Child] = []
    status = 0
    bar = tqdm(total=n * config.rounds, desc=f"gossip launch ({n} peers)", unit="round",
               disable=not progress)
    start = time.perf_counter()
    try:
        for i in range(n):
            log = out / "logs" / f"peer-{i:04d}.log"
            with log.open("w") as sink:
                proc = subprocess.Popen(peer_command(i, out, log_level), stdout=sink,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, preexec_fn=_die_with_parent)
            children.append(_Child(i, proc, log, out / f"peer-{i:04d}.jsonl"))
        running = True
        while running:
            time.sleep(POLL_S)
            running = any(c.proc.poll() is None for c in children)
            done = sum(c.follow() for c in children)
            if done:
                bar.update(done)
    except KeyboardInterrupt:
        status = 130
    except _Stop:
        status = 143
    finally:
        _terminate(children)
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    if status:
        print(f"gossip launch: stopped; all {n} peers terminated", file=sys.stderr)
        return status
    failed = [c for c in children if c.proc.returncode != 0]
    for c in failed:
        print(f"gossip launch: peer {c.peer} failed (exit code {c.proc.returncode}): "
              f"{c.last_log_line()}  [log: {c.log}]", file=sys.stderr)
    from gossip.peer.summary import summarise_run

    summarise_run(exp, out, time.perf_counter() - start)
    return 1 if failed else 0
