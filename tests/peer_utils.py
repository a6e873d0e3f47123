"""Helpers for tests that start real peer processes: start, find, and always clean up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FAST = ["--set", "model_options={hidden=[32]}", "--eval-every", "100"]


def gossip_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gossip", *args]


@contextlib.contextmanager
def started(cmd: list[str], log: Path, **popen: Any) -> Iterator[subprocess.Popen]:
    """Starts a process in its own session; kills its whole group on exit, pass or fail.

    ``popen`` goes to ``subprocess.Popen`` (``env``, ``cwd``, ...).
    """
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def assert_ports_free(peers_file: Path) -> None:
    """Every port in a peer list can be bound again (nobody listens on it)."""
    for line in peers_file.read_text().split():
        host, port = line.removeprefix("tcp://").rsplit(":", 1)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        finally:
            s.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def run_in_threads(peers: list[Any], timeout: float) -> dict[int, dict]:
    """Runs every peer's ``run()`` in a thread of its own (in-process peers); returns
    ``{peer id: its result}`` for those that returned within ``timeout`` seconds."""
    results: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda p=p: results.__setitem__(p.i, p.run()))
               for p in peers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return results
