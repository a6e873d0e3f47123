"""The peer list: one ZeroMQ address per peer, from a file, a comma-separated list, or the
hosts the peers run on (a hostfile, Slurm's node list)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from gossip.errors import ConfigError, check_int

PORT_BASE = 29500  # default first port of a host's peers (hostfile, Slurm node list)
_TCP = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-_]+):(\d+)$")


def check_address(address: str, where: str) -> str:
    """Checks one address: ``tcp://HOST:PORT`` (PORT in 1..65535) or ``ipc://PATH``.

    Raises:
        ConfigError: naming ``where`` the address came from.
    """
    if address.startswith("ipc://") and len(address) > len("ipc://"):
        return address
    m = _TCP.match(address)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ConfigError(f"{where}: {address!r} is not an address like tcp://10.0.0.2:7100 "
                          "or ipc:///tmp/peer-0")
    return address


def parse_peers(spec: str) -> list[str]:
    """Reads the peer list.

    Args:
        spec: a file with one address per line (line i is peer i; blank lines and lines
            starting with ``#`` are skipped) or a comma-separated list of addresses.

    Returns:
        The addresses, peer id order.

    Raises:
        ConfigError: an unreadable file, a bad address, a duplicate, or fewer than 2 peers.
    """
    path = Path(spec)
    if "://" not in spec or path.is_file():
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"cannot read the peer list {spec}: "
                              f"{e.strerror or e}") from None
        numbered = [(f"{spec} line {n}", line.strip()) for n, line in enumerate(lines, 1)]
        entries = [(w, a) for w, a in numbered if a and not a.startswith("#")]
    else:
        entries = [(f"--peers entry {n}", a.strip()) for n, a in enumerate(spec.split(","), 1)]
    addresses = [check_address(a, w) for w, a in entries]
    seen: dict[str, int] = {}
    for i, a in enumerate(addresses):
        if a in seen:
            raise ConfigError(f"peers {seen[a]} and {i} have the same address {a}")
        seen[a] = i
    if len(addresses) < 2:
        raise ConfigError(f"the peer list {spec!r} has {len(addresses)} address(es); "
                          "peers must be >= 2")
    return addresses


def host_addresses(hosts: Sequence[str], port_base: int,
                   where: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """The port and address of one peer per entry of ``hosts``.

    Peer i gets ``tcp://HOST:PORT`` with PORT ``port_base`` plus the number of earlier peers
    on the same host (an IPv6 host in brackets): ``(["a", "a", "b"], 29500)`` gives ports
    29500, 29501 and 29500. Both the hostfile launcher and ``gossip peer`` under Slurm
    assign addresses this way.

    Args:
        hosts: the host of every peer, in peer id order.
        port_base: the port of the first peer on each host.
        where: what errors name each entry by (e.g. its hostfile line); default ``peer I``.

    Returns:
        ``(port, address)`` of every peer.

    Raises:
        ConfigError: a port base outside 1..65535, more peers on one host than ports left
            above it, or a host that makes no valid address.
    """
    check_int("port_base", port_base, 1, 65535)
    where = where or [f"peer {i}" for i in range(len(hosts))]
    per_host = Counter(hosts)
    seen: Counter[str] = Counter()
    out = []
    for host, place in zip(hosts, where, strict=True):
        port = port_base + seen[host]
        seen[host] += 1
        address = f"tcp://{f'[{host}]' if ':' in host else host}:{port}"
        if port > 65535:
            raise ConfigError(f"{place}: port_base {port_base} with {per_host[host]} peers on "
                              f"host {host!r} needs ports up to "
                              f"{port_base + per_host[host] - 1}; {address} is past the "
                              "highest port, 65535")
        out.append((port, check_address(address, place)))
    return out


def addresses_for_hosts(hosts: Sequence[str], port_base: int) -> list[str]:
    """The addresses of ``host_addresses``: ``(["a", "a", "b"], 29500)`` gives
    tcp://a:29500, tcp://a:29501 and tcp://b:29500."""
    return [address for _, address in host_addresses(hosts, port_base)]
