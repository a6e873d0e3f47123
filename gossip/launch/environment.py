"""The launcher's view of a peer: its id, the number of peers and, under Slurm, every host.

Job launchers (``srun``, ``mpirun``/``mpiexec``, torchrun) tell each process its rank and the
size of the job through environment variables; this module reads them so that ``gossip peer``
needs no ``--id``. Everything here is a pure function of a ``Mapping[str, str]``: no I/O.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from gossip.errors import ConfigError, check_int
from gossip.launch.addresses import addresses_for_hosts, parse_peers

_T = TypeVar("_T")

# (source, rank variable, size variables, local-rank variables), innermost launcher first:
# an ``mpirun`` started inside a Slurm allocation still sees the allocation's SLURM_* variables.
_LAUNCHERS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("openmpi", "OMPI_COMM_WORLD_RANK", ("OMPI_COMM_WORLD_SIZE",),
     ("OMPI_COMM_WORLD_LOCAL_RANK",)),
    # PMIx exports PMIX_RANK and PMIX_NAMESPACE but no size: PMIX_RANK counts only beside a
    # size that a wrapper exported. Without one (``srun --mpi=pmix``) Slurm's variables apply.
    ("pmix", "PMIX_RANK", ("PMIX_SIZE", "OMPI_COMM_WORLD_SIZE"), ()),
    ("mpich", "PMI_RANK", ("PMI_SIZE",), ("MPI_LOCALRANKID", "PMI_LOCAL_RANK")),
    ("torchrun", "RANK", ("WORLD_SIZE",), ("LOCAL_RANK",)),
    ("slurm", "SLURM_PROCID", ("SLURM_NTASKS", "SLURM_NPROCS"), ("SLURM_LOCALID",)),
)
_SLURM_NODELIST = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST")
_SLURM_TASKS_PER_NODE = ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
_MAX_NAMES = 1 << 20  # a node list or tasks-per-node spec that expands further is refused
_NAME_CHARS = re.compile(r"[A-Za-z0-9._\-]*")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_TASKS = re.compile(r"([0-9]+)(?:\(x([0-9]+)\))?")
_INT = re.compile(r"-?[0-9]+")


@dataclasses.dataclass(frozen=True)
class LaunchEnv:
    """What the launcher says about this process.

    Attributes:
        source: the launcher whose variables were read: ``"slurm"``, ``"openmpi"``,
            ``"mpich"`` (PMI_RANK/PMI_SIZE: MPICH's and Intel MPI's hydra), ``"pmix"`` or
            ``"torchrun"``.
        rank: this peer's id, in ``[0, world_size)``.
        world_size: the number of peers.
        local_rank: this process's index among the job's processes on its host, when the
            launcher says.
        hosts: the host of every rank, ``len(hosts) == world_size``; only Slurm exports them
            (block distribution), otherwise None.
    """

    source: str
    rank: int
    world_size: int
    local_rank: int | None
    hosts: tuple[str, ...] | None


def detect_launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """Reads this process's rank, the job size and, under Slurm, every rank's host.

    A launcher counts when both its rank and its size variable are set (an empty value counts
    as unset); the innermost wins: Open MPI, then PMIx, then MPICH/Intel MPI, then torchrun,
    then Slurm (``SLURM_PROCID``: inside ``srun``). ``srun --mpi=pmi2`` exports PMI_RANK and
    PMI_SIZE too; those are Slurm's own (PMI_JOBID is ``SLURM_JOB_ID.SLURM_STEP_ID``), so
    Slurm is used and the hosts are kept.

    Slurm's hosts come from ``SLURM_STEP_NODELIST`` (else ``SLURM_JOB_NODELIST``) and
    ``SLURM_STEP_TASKS_PER_NODE`` (else ``SLURM_TASKS_PER_NODE``), assuming the default block
    distribution. They are None when either variable is missing, or when ``SLURM_LOCALID`` or
    ``SLURMD_NODENAME`` contradict that distribution (``srun -m cyclic``).

    Args:
        environ: the environment; ``os.environ`` when None.

    Returns:
        The launch environment, or None when no launcher's variables are set.

    Raises:
        ConfigError: a rank or size that is not an integer, a size below 1, a rank or local
            rank outside ``[0, size)``, a malformed Slurm node list or tasks-per-node spec, or
            Slurm counts that disagree; the message names the variable and its value.
    """
    env = os.environ if environ is None else environ
    for source, rank_var, size_vars, local_vars in _LAUNCHERS:
        size_var = _first_set(env, size_vars)
        if not env.get(rank_var) or size_var is None:
            continue
        if source == "mpich" and _is_sruns_own_pmi(env):
            continue
        size = _read_int(env, size_var)
        if size < 1:
            raise ConfigError(f"{size_var}={env[size_var]!r} must be >= 1")
        rank = _read_index(env, rank_var, size_var, size)
        local_var = _first_set(env, local_vars)
        local = None if local_var is None else _read_index(env, local_var, size_var, size)
        hosts = _slurm_hosts(env, size_var, size, rank, local) if source == "slurm" else None
        return LaunchEnv(source, rank, size, local, hosts)
    return None


def expand_nodelist(nodelist: str) -> list[str]:
    """Expands a Slurm node list.

    ``node[001-003,007],gpu5`` gives node001, node002, node003, node007, gpu5: commas inside
    brackets do not split names, a range keeps the zero padding of its start (``n[8-10]``:
    n8, n9, n10; ``n[08-10]``: n08, n09, n10), and several brackets in one name expand with the
    last varying fastest (``r[1-2]-n[1-2]``: r1-n1, r1-n2, r2-n1, r2-n2).

    Raises:
        ConfigError: ``malformed node list 'node[1-': unclosed '['``.
    """
    return _parse(_expand_nodelist, "node list", nodelist)


def expand_tasks_per_node(spec: str) -> list[int]:
    """Expands Slurm's tasks-per-node spec: ``2(x3),1`` gives ``[2, 2, 2, 1]``.

    Raises:
        ConfigError: ``malformed tasks-per-node spec '2(x': bad entry '2(x'``.
    """
    return _parse(_expand_tasks_per_node, "tasks-per-node spec", spec)


def hosts_by_rank(nodes: list[str], tasks_per_node: list[int]) -> list[str]:
    """The host of every rank under Slurm's default block distribution.

    Ranks fill the nodes in order: ``(["a", "b"], [2, 1])`` gives ``["a", "a", "b"]``.

    Raises:
        ConfigError: when the two lists differ in length.
    """
    if len(nodes) != len(tasks_per_node):
        raise ConfigError(f"{len(nodes)} nodes but {len(tasks_per_node)} tasks-per-node "
                          "entries")
    return [node for node, count in zip(nodes, tasks_per_node, strict=True)
            for _ in range(count)]


def _first_set(env: Mapping[str, str], names: Sequence[str]) -> str | None:
    return next((name for name in names if env.get(name)), None)


def _read_int(env: Mapping[str, str], name: str) -> int:
    value = env[name]
    if not _INT.fullmatch(value):
        raise ConfigError(f"{name}={value!r} is not an integer")
    return int(value)


def _read_index(env: Mapping[str, str], name: str, size_var: str, size: int) -> int:
    index = _read_int(env, name)
    if not 0 <= index < size:
        raise ConfigError(f"{name}={env[name]!r} is outside 0..{size - 1} "
                          f"({size_var}={env[size_var]!r})")
    return index


def _is_sruns_own_pmi(env: Mapping[str, str]) -> bool:
    """Whether PMI_RANK/PMI_SIZE come from ``srun --mpi=pmi2`` rather than from hydra."""
    job, step = env.get("SLURM_JOB_ID"), env.get("SLURM_STEP_ID")
    return (bool(job and step) and env.get("PMI_JOBID") == f"{job}.{step}"
            and env.get("SLURM_PROCID") == env.get("PMI_RANK"))


def _slurm_hosts(env: Mapping[str, str], size_var: str, size: int, rank: int,
                 local: int | None) -> tuple[str, ...] | None:
    nodes_var = _first_set(env, _SLURM_NODELIST)
    tasks_var = _first_set(env, _SLURM_TASKS_PER_NODE)
    if nodes_var is None or tasks_var is None:
        return None
    nodes = _parse(_expand_nodelist, nodes_var, env[nodes_var], variable=True)
    tasks = _parse(_expand_tasks_per_node, tasks_var, env[tasks_var], variable=True)
    if len(nodes) != len(tasks):
        raise ConfigError(f"{nodes_var}={env[nodes_var]!r} names {len(nodes)} nodes but "
                          f"{tasks_var}={env[tasks_var]!r} gives {len(tasks)} task counts")
    if sum(tasks) != size:
        raise ConfigError(f"{tasks_var}={env[tasks_var]!r} adds up to {sum(tasks)} tasks but "
                          f"{size_var}={env[size_var]!r}")
    hosts = hosts_by_rank(nodes, tasks)
    block_local = hosts[:rank].count(hosts[rank])
    node_name = env.get("SLURMD_NODENAME")
    if (local is not None and local != block_local) or (node_name and node_name != hosts[rank]):
        return None  # not the block distribution: the other ranks' hosts are unknown
    return tuple(hosts)


def _parse(parse: Callable[[str], _T], what: str, text: str, variable: bool = False) -> _T:
    try:
        return parse(text)
    except ValueError as e:
        if variable:
            raise ConfigError(f"{what}={text!r} is malformed: {e}") from None
        raise ConfigError(f"malformed {what} {text!r}: {e}") from None


def _split_names(nodelist: str) -> list[str]:
    names, depth, start = [], 0, 0
    for i, char in enumerate(nodelist):
        if char == "[":
            if depth:
                raise ValueError("nested '['")
            depth = 1
        elif char == "]":
            if not depth:
                raise ValueError("']' without '['")
            depth = 0
        elif char == "," and not depth:
            names.append(nodelist[start:i])
            start = i + 1
    if depth:
        raise ValueError("unclosed '['")
    return [*names, nodelist[start:]]


def _expand_range(text: str) -> list[str]:
    values = []
    for item in text.split(","):
        m = _RANGE.fullmatch(item)
        if not m:
            raise ValueError(f"bad range {item!r}")
        low, high = m.group(1), m.group(2) or m.group(1)
        if int(high) < int(low):
            raise ValueError(f"descending range {item!r}")
        if len(values) + int(high) - int(low) >= _MAX_NAMES:
            raise ValueError(f"more than {_MAX_NAMES} nodes")
        values += [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
    return values


def _expand_nodelist(nodelist: str) -> list[str]:
    hosts: list[str] = []
    for name in _split_names(nodelist):
        if not name:
            raise ValueError("empty node name")
        parts = re.split(r"\[([^\]]*)\]", name)  # literal, range, literal, range, ..., literal
        for literal in parts[::2]:
            if not _NAME_CHARS.fullmatch(literal):
                raise ValueError(f"bad character in node name {name!r}")
        choices = [[p] if i % 2 == 0 else _expand_range(p) for i, p in enumerate(parts)]
        if len(hosts) + math.prod(len(c) for c in choices) > _MAX_NAMES:
            raise ValueError(f"more than {_MAX_NAMES} nodes")
        hosts += ["".join(p) for p in itertools.product(*choices)]
    return hosts


def _expand_tasks_per_node(spec: str) -> list[int]:
    counts: list[int] = []
    for item in spec.split(","):
        m = _TASKS.fullmatch(item)
        if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
            raise ValueError(f"bad entry {item!r}")
        repeat = int(m.group(2) or 1)
        if len(counts) + repeat > _MAX_NAMES:
            raise ValueError(f"more than {_MAX_NAMES} nodes")
        counts += [int(m.group(1))] * repeat
    return counts


def peer_identity(peer_id: int | None, peers: str | None, port_base: int,
                  environ: Mapping[str, str] | None = None) -> tuple[int, list[str]]:
    """This peer's id and every peer's address, from the flags and then the launcher.

    Explicit flags win. Without ``--id`` the id is the launcher's rank; without ``--peers``
    the addresses come from Slurm's node list (``addresses_for_hosts(hosts, port_base)``),
    the only launcher that tells every rank's host.

    Args:
        peer_id: ``--id``, or None.
        peers: ``--peers`` (a file or a comma-separated list), or None.
        port_base: the first port of each host, for addresses built from Slurm's hosts.
        environ: the environment; ``os.environ`` when None.

    Returns:
        ``(peer_id, addresses)``.

    Raises:
        ConfigError: an id or peer list that is neither given nor known from the launcher,
            or a peer list whose length differs from the launcher's number of peers.
    """
    launch = detect_launch_env(environ)
    where = f" ({launch.source} says {launch.world_size} peers)" if launch else ""
    if peers is not None:
        addresses = parse_peers(peers)
        if launch and peer_id is None and len(addresses) != launch.world_size:
            raise ConfigError(f"--peers lists {len(addresses)} peers, but the launcher"
                              f"{where} started a different number")
    elif launch and launch.hosts:
        addresses = addresses_for_hosts(launch.hosts, port_base)
    else:
        raise ConfigError("--peers is required" + (
            f": {launch.source} does not tell every peer's host" if launch else
            " (or start the peers with srun, which gives every peer's host)"))
    if peer_id is None:
        if launch is None:
            raise ConfigError("--id is required when no launcher (srun, mpirun, torchrun) "
                              "started this process")
        peer_id = launch.rank
    return check_int("peer id", peer_id, 0, len(addresses) - 1), addresses
