"""``gossip launch --local N``: N peer processes on this machine, one progress bar, one summary.

The launcher validates the config first (nothing starts on a bad one), picks free loopback
ports, writes ``OUT/peers.txt`` and ``OUT/config.toml``, and starts ``gossip peer`` N times,
each in its own session and logging to ``OUT/logs/peer-XXXX.log``. It follows the peers'
metrics files for the progress bar. With ``--restarts K`` a peer that fails is started again
with ``--resume``, at most K times (:mod:`gossip.launch.supervise`). Ctrl-C, SIGTERM, or the
launcher's own death stops every peer (SIGTERM, then SIGKILL after a grace period). At the
end it evaluates the peers' final parameters together (average model, consensus distance)
and prints the same summary as ``gossip sim``; it exits 1 when any peer failed, naming it and
quoting its last log line.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

from gossip.config import Config, check_driver
from gossip.launch.keys import launch_keys
from gossip.launch.supervise import POLL_S, Child, die_with_parent, report, supervise
from gossip.outputs import make_out


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


def peer_command(peer: int, out: Path, log_level: str, keys: Path | None = None,
                 resume: bool = False) -> list[str]:
    """The command line of one local peer (``--keys keys`` when given, ``--resume``)."""
    return [sys.executable, "-m", "gossip", "peer", "--id", str(peer),
            "--peers", str(out / "peers.txt"), "--config", str(out / "config.toml"),
            "--log-level", log_level, *(["--keys", str(keys)] if keys else []),
            *(["--resume"] if resume else [])]


def launch_local(config: Config, progress: bool = True, log_level: str = "warning",
                 keys: str | None = None, plot: bool = True, restarts: int = 0) -> int:
    """Runs ``config.peers`` peers on this machine; see the module docstring.

    Args:
        config: the run's config.
        progress: show the progress bar.
        log_level: the peers' log level.
        keys: ``--keys``: a directory of CURVE keys, or ``"auto"`` (fresh ones in
            ``OUT/keys``); None: no encryption (:func:`gossip.launch.keys.launch_keys`).
        plot: draw ``OUT/curves.png`` at the end.
        restarts: ``--restarts``: how many times a failed peer is started again.

    Returns:
        The exit status: 0 when every peer finished, 1 when one failed, 130/143 when stopped
        by SIGINT/SIGTERM.
    """
    from gossip.experiment import build_experiment, check_attackers  # validates all first

    check_attackers(config)
    check_driver(config, "peers")
    exp = build_experiment(config)
    n, out = config.peers, Path(config.out)
    prepare_out(out, n)
    keys_dir = launch_keys(keys, out, n) if keys else None
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(n)]
    (out / "peers.txt").write_text("".join(a + "\n" for a in addresses))
    (out / "config.toml").write_text(dataclasses.replace(config, save_params=True).to_toml())

    def run_peer(i: int, resume: bool) -> subprocess.Popen:
        log = out / "logs" / f"peer-{i:04d}.log"
        with log.open("a" if resume else "w") as sink:
            if resume:
                sink.write(f"gossip launch: restarting peer {i} (--resume)\n")
                sink.flush()
            return subprocess.Popen(peer_command(i, out, log_level, keys_dir, resume),
                                    stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=die_with_parent)

    def start(children: list[Child]) -> None:
        for i in range(n):
            children.append(Child(i, run_peer(i, resume=False),
                                  out / "logs" / f"peer-{i:04d}.log"))

    def restart(child: Child) -> None:
        child.proc = run_peer(child.peer, resume=True)

    begin = time.perf_counter()
    status, children = supervise(n, config.rounds, progress, start, _MetricsFiles(out),
                                 restart=restart, max_restarts=restarts)
    return report(status, children, exp, out, time.perf_counter() - begin, plot=plot)
