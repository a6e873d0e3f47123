"""The peer list: one ZeroMQ address per peer, from a file or a comma-separated list."""

from __future__ import annotations

import re
from pathlib import Path

from gossip.errors import ConfigError

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
                          "a run needs at least 2")
    return addresses
