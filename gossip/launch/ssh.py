"""``gossip launch --hostfile HOSTS``: the peers of one run on several machines, over ssh.

The launcher validates the config (nothing starts on a bad one), gives the peers ids and
ports from the hostfile (:mod:`gossip.launch.hostfile`), writes ``config.toml`` and
``peers.txt`` into a run directory on every host (``ssh HOST 'mkdir -p DIR && cat >
DIR/FILE'``), with ``--keys`` also ``DIR/keys`` (a tar stream on stdin: every public key, the
secret keys of the host's own peers; :mod:`gossip.launch.keys`), and starts each peer with one
ssh (the commands: :mod:`gossip.launch.remote`)::

    ssh -o BatchMode=yes HOST 'cd DIR && echo $$ > peer-XXXX.pid && exec env NAME=VALUE ...
        gossip peer --id I --peers DIR/peers.txt --config DIR/config.toml --log-level L
        --stream-metrics --watch-stdin [--keys DIR/keys]'

The peer prints each round's metrics record on stdout (``--stream-metrics``); those drive
the progress bar and are kept in ``OUT/peer-XXXX.jsonl``; its other output and ssh's own
go to ``OUT/logs/peer-XXXX.log``. With ``--restarts K``, the ssh of a peer that fails is
started again with ``--resume`` added, at most K times (:mod:`gossip.launch.supervise`).
When every ssh has exited, one ssh per host streams the peers' metrics and final parameters
back as a tar archive, one more stops any peer still running there and removes the run
directory (unless ``--remote-dir`` named it), and the run is summarised as ``gossip launch
--local`` does (:func:`gossip.launch.supervise.report`). A host where the ssh of every peer
failed with ssh's own exit code 255 (and not because the launcher stopped it) is reported as
lost, and not contacted again (:mod:`gossip.launch.remote_run`).

Stopping: the launcher closes every ssh's stdin, so each remote peer sees EOF on its stdin
and exits (``--watch-stdin``), then terminates the ssh processes (SIGTERM, SIGKILL after a
grace). The launcher's own death closes those pipes too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import selectors
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from gossip.config import Config, config_from_args
from gossip.errors import ConfigError
from gossip.launch.addresses import PORT_BASE
from gossip.launch.hostfile import Host, Slot, assign, read_hostfile
from gossip.launch.keys import launch_keys
from gossip.launch.local import prepare_out
from gossip.launch.remote import (
    SshOptions,
    forwarded_env,
    peer_remote_command,
    ssh_command,
)
from gossip.launch.remote_run import SetupError, clean_up, gather, lost_hosts, prepare_hosts
from gossip.launch.supervise import (
    POLL_S,
    Child,
    die_with_parent,
    report,
    supervise,
    terminate,
)
from gossip.outputs import with_out

PATIENCE_S = 2.0  # after closing the ssh's stdin, time the remote peers get to exit
_SSH_FLAGS = {"port_base": "--port-base", "remote_dir": "--remote-dir", "ssh": "--ssh",
              "ssh_option": "--ssh-option", "remote_gossip": "--remote-gossip", "env": "--env"}

# -- following the peers' stdout -------------------------------------------------------------


def _record(line: bytes) -> bool:
    """True when ``line`` is a metrics record (a JSON object with a round)."""
    if not line.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(line).get("round"), int)
    except (ValueError, AttributeError):
        return False


@dataclasses.dataclass
class _Stream:
    child: Child
    metrics: IO[bytes]
    log: IO[bytes]
    pipe: IO[bytes] | None = None
    partial: bytes = b""

    def take(self, data: bytes) -> int:
        """Splits new stdout bytes (``b""``: EOF); returns the rounds newly completed."""
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop() if data else b""
        records, others = [], []
        for line in lines:
            (records if _record(line) else others).append(line + b"\n")
        self.metrics.writelines(records)
        self.log.writelines(ln for ln in others if ln.strip())
        self.metrics.flush()
        self.log.flush()
        return self.child.count(records)


class _Streams:
    """``follow`` of ssh peers: reads their stdout as it comes (records, other lines)."""

    def __init__(self, out: Path):
        self.out = out
        self.selector = selectors.DefaultSelector()
        self.streams: dict[int, _Stream] = {}
        self.rounds = 0  # rounds read outside a call, reported by the next one

    def add(self, child: Child) -> None:
        """Follows the stdout of ``child.proc``; for a restarted child, after taking what is
        left of the previous one's."""
        stream = self.streams.get(child.peer)
        if stream is None:
            stream = _Stream(child, (self.out / f"peer-{child.peer:04d}.jsonl").open("ab"),
                             child.log.open("ab"))
            self.streams[child.peer] = stream
        elif stream.pipe is not None:  # its writer has exited: what is left is buffered
            key = self.selector.get_key(stream.pipe)
            while stream.pipe is not None and self._read(key, drain=True) is not None:
                pass
        stream.pipe = child.proc.stdout
        os.set_blocking(stream.pipe.fileno(), False)
        self.selector.register(stream.pipe, selectors.EVENT_READ, stream)

    def __call__(self, children: list[Child]) -> int:
        if self.selector.get_map():
            self.selector.select(POLL_S)  # waits for news
        else:  # every stdout at EOF
            time.sleep(POLL_S)
        return self.poll_once()

    def poll_once(self) -> int:
        """Reads what is ready now, without waiting; returns the rounds newly completed."""
        ready = self.selector.select(0) if self.selector.get_map() else []
        for key, _ in ready:
            self._read(key)
        rounds, self.rounds = self.rounds, 0
        return rounds

    def _read(self, key: selectors.SelectorKey, drain: bool = False) -> int | None:
        """Reads once from a pipe (at EOF, stops following it); returns the bytes read, or
        None when nothing was there. With ``drain``, also stops following it then."""
        stream = key.data
        try:
            data = os.read(key.fd, 1 << 16)
        except BlockingIOError:
            if not drain:
                return None
            data = b""  # a writer still holds it (an ssh helper): what is left is lost
        if not data:
            self.selector.unregister(key.fileobj)
            key.fileobj.close()
            stream.pipe = None
        self.rounds += stream.take(data)
        return len(data) if data else None

    def close(self) -> None:
        """Takes what is left in the pipes, then closes the files."""
        with contextlib.suppress(OSError):
            self.poll_once()
        for stream in self.streams.values():
            stream.metrics.close()
            stream.log.close()
        self.selector.close()


def check_options(opts: SshOptions) -> str:
    """Checks ``--ssh``, ``--remote-gossip`` and ``--remote-dir``; returns the remote run
    directory (``--remote-dir``, or a new ``/tmp/gossip-<8 hex digits>``).

    Raises:
        ConfigError: naming the flag.
    """
    try:
        program = shlex.split(opts.ssh)[:1]
    except ValueError as e:
        raise ConfigError(f"--ssh {opts.ssh!r}: {e}") from None
    if not program or not shutil.which(program[0]):
        raise ConfigError(f"--ssh {opts.ssh!r}: no such program")
    try:
        if not shlex.split(opts.remote_gossip):
            raise ValueError("empty command")
    except ValueError as e:
        raise ConfigError(f"--remote-gossip {opts.remote_gossip!r}: {e}") from None
    remote_dir = opts.remote_dir or f"/tmp/gossip-{secrets.token_hex(4)}"
    if not remote_dir.startswith("/"):
        raise ConfigError(f"--remote-dir {remote_dir}: must be an absolute path")
    return remote_dir


# -- the launcher ----------------------------------------------------------------------------


def launch_ssh(config: Config, hosts: list[Host], opts: SshOptions, progress: bool = True,
               log_level: str = "warning", keys: str | None = None, plot: bool = True,
               restarts: int = 0) -> int:
    """Runs ``config.peers`` peers on ``hosts``; see the module docstring.

    ``keys`` is ``--keys``: a directory of CURVE keys, or ``"auto"`` (fresh ones in
    ``OUT/keys``); None: no encryption. ``plot``: draw ``OUT/curves.png`` at the end.
    ``restarts`` is ``--restarts``: how many times a failed peer is started again.

    Returns:
        The exit status: 0 when every peer finished, 1 when one failed or a host could not
        be prepared, 130/143 when stopped by SIGINT/SIGTERM.
    """
    from gossip.experiment import build_experiment, check_attackers  # validates all first

    check_attackers(config)
    exp = build_experiment(config)
    env = forwarded_env(os.environ, opts.env)
    remote_dir = check_options(opts)
    slots = assign(hosts, opts.port_base)
    out = Path(config.out)
    prepare_out(out, config.peers)
    keys_dir = launch_keys(keys, out, config.peers) if keys else None
    files = {"peers.txt": "".join(s.address + "\n" for s in slots),
             "config.toml": dataclasses.replace(config, out=remote_dir,
                                                save_params=True).to_toml()}
    for name, text in files.items():
        (out / name).write_text(text)
    print(f"gossip launch: run directory on the hosts: {remote_dir}", file=sys.stderr)
    prepared: list[str] = []
    try:
        prepare_hosts(opts, hosts, slots, remote_dir, files, keys_dir, config.peers,
                       prepared)
    except SetupError as e:
        print(f"gossip launch: {e}", file=sys.stderr)
        clean_up(opts, prepared[:-1], remote_dir, lost=[])
        return 1

    streams = _Streams(out)
    by_peer = {s.peer: s for s in slots}

    def run_peer(slot: Slot, log: Path, resume: bool) -> subprocess.Popen:
        remote = peer_remote_command(slot, remote_dir, env, opts.remote_gossip, log_level,
                                     keys=keys_dir is not None, resume=resume)
        with log.open("ab") as sink:
            return subprocess.Popen(ssh_command(opts, slot.host, remote),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=sink, start_new_session=True,
                                    preexec_fn=die_with_parent)

    def start(children: list[Child]) -> None:
        for slot in slots:
            log = out / "logs" / f"peer-{slot.peer:04d}.log"
            log.write_bytes(b"")
            children.append(Child(slot.peer, run_peer(slot, log, resume=False), log,
                                  host=slot.host))
            streams.add(children[-1])

    def restart(child: Child) -> None:
        with child.log.open("ab") as log:
            log.write(f"gossip launch: restarting peer {child.peer} (--resume)\n".encode())
        child.proc = run_peer(by_peer[child.peer], child.log, resume=True)
        streams.add(child)

    def stop(children: list[Child]) -> None:
        for c in children:
            with contextlib.suppress(OSError):
                c.proc.stdin.close()  # EOF on the remote peer's stdin: it exits
        terminate(children, patience=PATIENCE_S)

    begin = time.perf_counter()
    try:
        status, children = supervise(config.peers, config.rounds, progress, start, streams,
                                     stop, restart=restart, max_restarts=restarts)
    finally:
        streams.close()
    wall_time = time.perf_counter() - begin
    lost = lost_hosts(slots, children)
    gather(opts, slots, children, remote_dir, out, lost)
    clean_up(opts, [h.name for h in hosts], remote_dir, lost)
    return report(status, children, exp, out, wall_time, plot=plot)


# -- command line ----------------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of ``gossip launch --hostfile`` (all default to None: unset)."""
    group = parser.add_argument_group("with --hostfile (peers on other machines, over ssh)")
    group.add_argument("--port-base", type=int, metavar="PORT",
                       help="port of the first peer on each host; the j-th uses PORT+j "
                            f"(default: {PORT_BASE})")
    group.add_argument("--remote-dir", metavar="DIR",
                       help="absolute run directory on every host "
                            "(default /tmp/gossip-<8 random hex digits>)")
    group.add_argument("--ssh", metavar="CMD", help="the ssh program (default ssh)")
    group.add_argument("--ssh-option", action="append", metavar="OPT",
                       help="passed to ssh as -o OPT (repeatable; default: none)")
    group.add_argument("--remote-gossip", metavar="CMD",
                       help="how gossip is started on the hosts (default gossip), e.g. "
                            "'/opt/venv/bin/python -m gossip'")
    group.add_argument("--env", action="append", metavar="NAME[=VALUE]",
                       help="also pass this variable to the peers (repeatable; default: "
                            "only the JAX and thread variables, see docs/multihost.md)")


def options_from_args(args: argparse.Namespace) -> SshOptions:
    """The :class:`SshOptions` of the parsed flags (defaults for those not given)."""
    given = {k: getattr(args, k) for k in _SSH_FLAGS if getattr(args, k) is not None}
    renamed = {"ssh_option": "ssh_options"}
    values: dict[str, Any] = {renamed.get(k, k): v for k, v in given.items()}
    for key in ("ssh_options", "env"):
        if key in values:
            values[key] = tuple(values[key])
    return SshOptions(**values)


def refuse_ssh_flags(args: argparse.Namespace) -> None:
    """Raises ConfigError when a ``--hostfile`` flag was given without ``--hostfile``."""
    given = [flag for key, flag in _SSH_FLAGS.items() if getattr(args, key) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} "
                          "with --hostfile")


def run_hostfile_command(args: argparse.Namespace) -> int:
    """``gossip launch --hostfile HOSTS``."""
    hosts = read_hostfile(args.hostfile)
    config = with_out(config_from_args(args, fixed={"peers": sum(h.slots for h in hosts)}),
                      "launch")
    return launch_ssh(config, hosts, options_from_args(args), progress=not args.no_progress,
                      log_level=args.log_level, keys=args.keys, plot=not args.no_plot,
                      restarts=args.restarts)
