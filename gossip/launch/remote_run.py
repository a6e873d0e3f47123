"""The run directory of ``gossip launch --hostfile`` on every host: written before the run,
gathered from and cleaned up after it.

Before: :func:`prepare_hosts` writes ``config.toml``, ``peers.txt`` and with ``--keys`` the
keys into ``DIR`` on every host, one ssh each with the data on its stdin. After: a host where
the ssh of every peer failed with ssh's own exit code 255, and not because the launcher
stopped it, is *lost* (:func:`lost_hosts`) and not contacted again; from the others,
:func:`gather` fetches the peers' metrics and final parameters (a tar stream, extracted as
plain data files) and :func:`clean_up` stops any peer of the run still running and removes
``DIR`` (unless ``--remote-dir`` named it). Nothing after the run raises: each problem is
one line on stderr naming the host.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

from gossip.launch.hostfile import Host, Slot
from gossip.launch.keys import REMOTE_KEYS, key_archive, unpack_keys_command
from gossip.launch.remote import (
    SshOptions,
    cleanup_command,
    gather_command,
    ssh_command,
    write_file_command,
)
from gossip.launch.supervise import SSH_FAILED, Child

CLEANUP_TIMEOUT_S = 60.0  # the gather and the clean-up ssh of one host


class SetupError(Exception):
    """A host could not be prepared."""


def _last_line(stderr: bytes) -> str:
    return (stderr.decode(errors="replace").strip().splitlines() or ["(no message)"])[-1]


def _write_remote(opts: SshOptions, host: str, remote: str, data: bytes, what: str) -> None:
    """Runs ``remote`` on ``host`` with ``data`` on its stdin; ``what`` names the target."""
    run = subprocess.run(ssh_command(opts, host, remote), input=data,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if run.returncode != 0:
        raise SetupError(f"cannot write {what} on host {host} "
                         f"(exit code {run.returncode}): {_last_line(run.stderr)}")


def _gather_host(opts: SshOptions, host: str, remote_dir: str, names: list[str],
                 out: Path) -> set[str]:
    """Extracts ``names`` from the host's run directory into ``out``; returns those it got."""
    wanted, got = set(names), set()
    with tempfile.TemporaryFile() as err, subprocess.Popen(
            ssh_command(opts, host, gather_command(remote_dir, names)),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err) as proc:
        # A host that stops answering mid-transfer must not hang the launcher: the ssh is
        # killed after CLEANUP_TIMEOUT_S, which ends the tar stream.
        watchdog = threading.Timer(CLEANUP_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.name in wanted and member.isfile():
                        tar.extract(member, out, filter="data")
                        got.add(member.name)
        except tarfile.TarError:
            pass  # nothing usable came (the host is gone); said below
        finally:
            watchdog.cancel()
            proc.stdout.close()
            proc.wait()
        if got != wanted:
            err.seek(0)
            why = err.read().decode(errors="replace").strip().splitlines()
            print(f"gossip launch: host {host} did not send {' '.join(sorted(wanted - got))} "
                  f"(exit code {proc.returncode}{': ' + why[0] if why else ''})",
                  file=sys.stderr)
    return got


def lost_hosts(slots: list[Slot], children: list[Child]) -> list[str]:
    """The hosts where the ssh of every started peer exited with ssh's own code 255 without
    the launcher stopping it: no connection, or it was lost (sshd, network or host gone)."""
    by_host: dict[str, list[Child]] = {}
    for c in children:
        by_host.setdefault(c.host, []).append(c)
    hosts = list(dict.fromkeys(s.host for s in slots))
    return [h for h in hosts if h in by_host and all(
        c.proc.returncode == SSH_FAILED and not c.signalled for c in by_host[h])]


def gather(opts: SshOptions, slots: list[Slot], children: list[Child], remote_dir: str,
           out: Path, lost: list[str]) -> None:
    """Fetches the hosts' metrics files, and the parameters of the peers that finished, into
    ``out``. Never raises for a host that is gone; the ``lost`` hosts are skipped."""
    status = {c.peer: c.proc.returncode for c in children}
    by_host: dict[str, list[int]] = {}
    for s in slots:
        if s.peer in status:
            by_host.setdefault(s.host, []).append(s.peer)
    for host, peers in by_host.items():
        if host in lost:
            codes = sorted({c.proc.returncode for c in children if c.host == host})
            print(f"gossip launch: lost host {host}: the ssh of its peers "
                  f"{', '.join(map(str, peers))} exited with code "
                  f"{', '.join(map(str, codes))} (ssh's own failure: no connection, or the "
                  "connection was lost); nothing gathered from it", file=sys.stderr)
            continue
        names = [f"peer-{i:04d}.jsonl" for i in peers]
        names += [f"params/peer-{i:04d}.npz" for i in peers if status[i] == 0]
        try:
            _gather_host(opts, host, remote_dir, names, out)
        except OSError as e:
            print(f"gossip launch: could not gather from host {host}: {e}", file=sys.stderr)


def clean_up(opts: SshOptions, hosts: list[str], remote_dir: str, lost: list[str]) -> None:
    """On every host but the ``lost`` ones, stops the run's peers still running and removes
    the run directory unless ``--remote-dir`` named it (:func:`cleanup_command`). Never
    raises; a host that cannot be cleaned up is named."""
    remove = opts.remote_dir is None
    for host in hosts:
        if host in lost:
            if remove:
                print(f"gossip launch: run directory {remote_dir} left on lost host {host}",
                      file=sys.stderr)
            continue
        try:
            run = subprocess.run(ssh_command(opts, host, cleanup_command(remote_dir, remove)),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, timeout=CLEANUP_TIMEOUT_S,
                                 check=False)
            failed = run.returncode and f"exit code {run.returncode}: {_last_line(run.stderr)}"
        except (OSError, subprocess.TimeoutExpired) as e:
            failed = str(e)
        if failed:
            print(f"gossip launch: could not clean up host {host} ({failed}); peers or "
                  f"{remote_dir} may be left there", file=sys.stderr)


def prepare_hosts(opts: SshOptions, hosts: list[Host], slots: list[Slot], remote_dir: str,
                   files: dict[str, str], keys_dir: Path | None, n_peers: int,
                   prepared: list[str]) -> None:
    """Writes the run's files (and keys) on every host, appending each to ``prepared``.

    Raises:
        SetupError: a host could not be written to.
    """
    for host in hosts:
        prepared.append(host.name)
        for name, text in files.items():
            _write_remote(opts, host.name, write_file_command(remote_dir, name),
                          text.encode(), f"{remote_dir}/{name}")
        if keys_dir:
            own = [s.peer for s in slots if s.host == host.name]
            _write_remote(opts, host.name, unpack_keys_command(remote_dir),
                          key_archive(keys_dir, n_peers, own), f"{remote_dir}/{REMOTE_KEYS}")
