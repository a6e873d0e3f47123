"""Test networks of Linux network namespaces: n "hosts" on one bridge, nothing in the root one.

```
 gTAG-PID-0 (10.77.X.1/24, eth0) ─┐
 gTAG-PID-1 (10.77.X.2/24, eth0) ─┼─ veth ── p0, p1, ... ── br0   in namespace gTAG-PID-b
 ...                             ─┘
```

Every interface is created inside a namespace this module made (``ip -n NS link add ...
peer ... netns NS2``), so the root namespace's interfaces are never touched, and the names
(``eth0``, ``p<i>``, ``br0``) only need to be unique inside their own namespace. Namespace
names are short (``gTAG-PID-I``, PID in hex: 15 characters or fewer with pids below 2**16).
Two concurrent runs use different namespace names (the pid is in them); their subnets may
even coincide without harm, since each bridge lives in its own namespace. Needs root.

```python
with bridged_namespaces(2, "demo") as net:
    subprocess.run([*net.exec_prefix(0), "python", "-c", "..."])  # runs on "host" 0
    net.cut(1)       # host 1 unreachable (its bridge port is down)
    net.restore(1)
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import signal
import subprocess
import zlib
from collections.abc import Iterator

PREFIX = "g"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


@functools.cache
def netns_available() -> bool:
    """True when this process is root and can create and delete a network namespace."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    probe = f"{PREFIX}probe-{os.getpid():x}"
    try:
        if _ip("netns", "add", probe, check=False).returncode != 0:
            return False
        return _ip("netns", "del", probe, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@dataclasses.dataclass(frozen=True)
class Network:
    """n namespaces on one bridge.

    Attributes:
        names: namespace of host i.
        addresses: IPv4 address of host i (``10.77.X.(i+1)``, on its ``eth0``).
        bridge: the namespace that holds the bridge ``br0`` and its ports ``p<i>``.
    """

    names: list[str]
    addresses: list[str]
    bridge: str

    def exec_prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program in host i's namespace."""
        return ["ip", "netns", "exec", self.names[i]]

    def cut(self, i: int) -> None:
        """Disconnects host i: its port on the bridge goes down (its own link stays up)."""
        _ip("-n", self.bridge, "link", "set", f"p{i}", "down")

    def restore(self, i: int) -> None:
        """Reconnects host i after :meth:`cut`."""
        _ip("-n", self.bridge, "link", "set", f"p{i}", "up")

    def limit_rate(self, i: int, rate: str, device: str = "eth0") -> None:
        """Limits what host i sends through ``device`` (``eth0`` to the others, ``lo`` to
        itself) to ``rate`` (``tc`` syntax, e.g. ``"1mbit"``) with a token bucket (the
        kernel here has ``tbf``, not ``netem``)."""
        subprocess.run([*self.exec_prefix(i), "tc", "qdisc", "replace", "dev", device, "root",
                        "tbf", "rate", rate, "burst", "32kb", "latency", "400ms"],
                       check=True, capture_output=True, timeout=30)


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _remove(name: str) -> None:
    """Kills every process still in namespace ``name``, then deletes it."""
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def _remove_leftovers(tag: str) -> None:
    """Removes namespaces ``gTAG-PID-*`` whose creating process is gone (a crashed run)."""
    pattern = re.compile(rf"^{re.escape(PREFIX + tag)}-([0-9a-f]+)-")
    for name in _namespaces():
        m = pattern.match(name)
        if m and not os.path.exists(f"/proc/{int(m.group(1), 16)}"):
            _remove(name)


def subnet_octet(tag: str, pid: int) -> int:
    """X of the subnet 10.77.X.0/24 of the run (tag, pid): 1..254."""
    return zlib.crc32(f"{tag}-{pid}".encode()) % 254 + 1


@contextlib.contextmanager
def bridged_namespaces(n: int, tag: str) -> Iterator[Network]:
    """Creates n namespaces on one bridge; removes them all on exit, even on an exception.

    Leftovers of an earlier crashed run with the same tag are removed first. On exit, any
    process still running in one of the namespaces is killed (SIGKILL) before it is deleted.

    Args:
        n: number of hosts, 1..254.
        tag: a short word naming the user (``[a-z0-9]``, at most 5 characters). One
            network per tag at a time in a process.
    """
    if not 1 <= n <= 254:
        raise ValueError(f"n must be in 1..254, got {n}")
    if not re.fullmatch(r"[a-z0-9]{1,5}", tag):
        raise ValueError(f"tag must be 1 to 5 characters of [a-z0-9], got {tag!r}")
    _remove_leftovers(tag)
    pid = os.getpid()
    base = f"{PREFIX}{tag}-{pid:x}-"
    x = subnet_octet(tag, pid)
    net = Network(names=[f"{base}{i}" for i in range(n)],
                  addresses=[f"10.77.{x}.{i + 1}" for i in range(n)], bridge=f"{base}b")
    created: list[str] = []
    try:
        for name in (net.bridge, *net.names):
            _ip("netns", "add", name)
            created.append(name)
        br = net.bridge
        _ip("-n", br, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        _ip("-n", br, "link", "set", "lo", "up")
        _ip("-n", br, "link", "set", "br0", "up")
        for i, (name, address) in enumerate(zip(net.names, net.addresses, strict=True)):
            _ip("-n", br, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0",
                "netns", name)
            _ip("-n", br, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", br, "link", "set", f"p{i}", "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "link", "set", "eth0", "up")
        yield net
    finally:
        for name in reversed(created):
            _remove(name)
