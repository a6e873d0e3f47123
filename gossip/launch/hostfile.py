"""The hostfile of ``gossip launch --hostfile``: which hosts, how many peers on each.

One host a line, ``HOST`` or ``HOST slots=K`` (K peers on that host, default 1); blank lines
and ``#`` comments are skipped::

    # two workstations, two peers each
    10.0.0.2 slots=2
    gpu-box  slots=2   # a name ssh and the other hosts can resolve

Ids follow the file: the first host gets peers ``0..K0-1``, the next ``K0..K0+K1-1``, and so
on; the j-th peer of a host listens on ``port_base + j``. A host may appear only once (two
lines for one host would give two peers the same port).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from gossip.errors import ConfigError
from gossip.launch.addresses import host_addresses

_HOST = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9.\-_]*|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$")
_SLOTS = re.compile(r"^slots=(\d+)$")


@dataclasses.dataclass(frozen=True)
class Host:
    """One line of a hostfile: ``name`` runs ``slots`` peers; ``where`` names the line."""

    name: str
    slots: int
    where: str


@dataclasses.dataclass(frozen=True)
class Slot:
    """One peer of the run: its id, host, port and ZeroMQ address."""

    peer: int
    host: str
    port: int
    address: str


def _parse_line(text: str, where: str) -> Host:
    words = text.split()
    host, options = words[0], words[1:]
    if not _HOST.match(host):
        raise ConfigError(f"{where}: {host!r} is not a host name or address")
    slots = 1
    if len(options) > 1:
        raise ConfigError(f"{where}: expected 'HOST' or 'HOST slots=K', got {text!r}")
    if options:
        m = _SLOTS.match(options[0])
        if not m:
            raise ConfigError(f"{where}: expected 'slots=K' after the host, got {options[0]!r}")
        slots = int(m.group(1))
        if slots < 1:
            raise ConfigError(f"{where}: slots must be >= 1, got {slots}")
    return Host(host, slots, where)


def parse_hostfile(text: str, source: str = "hostfile") -> list[Host]:
    """Parses a hostfile's text.

    Args:
        text: the file's content.
        source: how errors name the file.

    Returns:
        The hosts, file order.

    Raises:
        ConfigError: naming the line: a bad host, a bad ``slots``, a host listed twice, or
            fewer than 2 peers in all.
    """
    hosts: list[Host] = []
    seen: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        host = _parse_line(content, f"{source} line {n}")
        if host.name in seen:
            raise ConfigError(f"{host.where}: host {host.name} is already listed on "
                              f"{seen[host.name]}; give it slots=K once")
        seen[host.name] = host.where.removeprefix(f"{source} ")
        hosts.append(host)
    total = sum(h.slots for h in hosts)
    if total < 2:
        raise ConfigError(f"{source} has {total} slot(s); peers must be >= 2")
    return hosts


def read_hostfile(path: str | Path) -> list[Host]:
    """Reads and parses a hostfile (see :func:`parse_hostfile`)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the hostfile {path}: {e.strerror or e}") from None
    return parse_hostfile(text, str(path))


def assign(hosts: list[Host], port_base: int) -> list[Slot]:
    """Gives every slot its peer id (file order), port (``port_base`` + index on its host) and
    address (``gossip.launch.addresses.host_addresses``).

    Raises:
        ConfigError: a port base outside 1..65535, or a port above 65535 (naming the line).
    """
    names = [host.name for host in hosts for _ in range(host.slots)]
    lines = [host.where for host in hosts for _ in range(host.slots)]
    return [Slot(peer, name, port, address) for peer, (name, (port, address))
            in enumerate(zip(names, host_addresses(names, port_base, lines), strict=True))]
