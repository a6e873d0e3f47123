"""Test hosts that run the real daemons: OpenSSH's sshd, Slurm (slurmctld, slurmd, munge).

A "host" is a network namespace on a bridge (:mod:`netns`) plus a holder process that keeps
the host's own UTS namespace (its hostname is the host's name) and mount namespace, in which

- ``/etc/hosts`` lists every host by name (``login``, ``node1``, ``node2``, ...),
- ``/etc/ssh/ssh_config`` makes ssh use a throwaway client key and the hosts' throwaway host
  keys (``StrictHostKeyChecking yes``: an unknown key fails),
- ``/opt`` is a tmpfs with ``/opt/venv`` = the virtual environment running the tests (the
  path the docs use),
- compute hosts (all but the first) have a ``/tmp`` of their own: a remote run directory
  on one host is not seen by another.

Everything else is shared, as a cluster's NFS would be: the test's work directories and the
daemons' files live under one base directory in ``/var/tmp`` (not ``/tmp``, which the
compute hosts do not see). Commands run on a host with ``nsenter`` into its holder
(:meth:`Host.command`).

```python
with real_hosts(["login", "node1", "node2"], "real") as cluster, sshd(cluster), \\
        slurm(cluster):
    cluster.run("login", ["ssh", "node1", "hostname"])          # node1, through sshd
    cluster.run("login", ["sbatch", "--wait", "job.sh"], cwd=cluster.work("slurm"))
```

Needs root, ``ip netns``, ``nsenter``/``unshare`` and the daemons (Debian: ``openssh-server
slurm-wlm munge openmpi-bin``); :func:`missing` says what is absent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from netns import Network, bridged_namespaces, netns_available

BASE_DIR = Path("/var/tmp")
BASE_PREFIX = "gossip-real-"
PROGRAMS = ("ip", "nsenter", "unshare", "ssh", "ssh-keygen", "/usr/sbin/sshd", "munged",
            "slurmctld", "slurmd", "sbatch", "srun", "scancel", "squeue", "sinfo", "mpirun")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV = "/opt/venv"  # where the hosts see the tests' virtual environment
REPO = Path(__file__).resolve().parent.parent  # the checkout the tests run from


def missing() -> list[str]:
    """What these hosts need and this machine lacks (empty: everything is there)."""
    lacks = [p for p in PROGRAMS if not shutil.which(p)]
    if sys.prefix == sys.base_prefix:
        lacks.append("a virtual environment running the tests")
    if not netns_available():
        lacks.append("root and `ip netns`")
    return lacks


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    """Polls ``predicate`` until it is true; AssertionError naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclasses.dataclass(frozen=True)
class Host:
    """One test host.

    Attributes:
        name: its host name (resolvable on every host).
        address: its IPv4 address on the bridge.
        netns: its network namespace.
        holder: pid of the process that holds its UTS and mount namespaces.
    """

    name: str
    address: str
    netns: str
    holder: int

    def command(self, argv: Sequence[str], cwd: str | Path = "/") -> list[str]:
        """``argv`` run on this host, in directory ``cwd``."""
        return ["nsenter", "-t", str(self.holder), "-n", "-m", "-u", f"--wd={cwd}", "--",
                *argv]

    def processes(self, text: str = "") -> dict[int, str]:
        """``{pid: command line}`` of the live processes on this host that mention ``text``."""
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True,
                              text=True, check=False, timeout=30).stdout.split()
        found = {}
        for pid in map(int, pids):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and text in cmdline.decode(errors="replace"):
                found[pid] = cmdline.decode(errors="replace").strip()
        return found

    def peers(self) -> dict[int, str]:
        """The peer processes on this host: Python running ``gossip peer`` (``python -m
        gossip peer`` or the ``gossip`` script), not a launcher that mentions it (``srun
        gossip peer ...``)."""
        return {pid: cmd for pid, cmd in self.processes("gossip").items()
                if re.match(r"\S*python[\d.]*( -m gossip| \S*/gossip) peer ", cmd)}


@dataclasses.dataclass
class Cluster:
    """The hosts, and the directory they share.

    Attributes:
        base: the shared directory (daemons' files under ``base/etc``, work under
            ``base/work``).
        hosts: the hosts by name, the first one being the login host.
        venv: the tests' virtual environment (seen as ``/opt/venv`` on the hosts).
        net: their network.
        env_extra: variables every command gets (set by the daemons: ``SLURM_CONF``).
    """

    base: Path
    hosts: dict[str, Host]
    venv: Path
    net: Network
    env_extra: dict[str, str] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def login(self) -> Host:
        return next(iter(self.hosts.values()))

    @property
    def nodes(self) -> list[Host]:
        """Every host but the login host."""
        return list(self.hosts.values())[1:]

    def work(self, name: str) -> Path:
        """A fresh shared work directory ``base/work/name``."""
        path = self.base / "work" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment as a login shell with the venv activated would have it."""
        return {"PATH": f"{VENV}/bin:{SYSTEM_PATH}", "HOME": "/root", "USER": "root",
                "LOGNAME": "root", "LANG": "C.UTF-8", "SHELL": "/bin/bash",
                "VIRTUAL_ENV": VENV, "JAX_PLATFORMS": "cpu", **self.env_extra, **extra}

    def popen(self, host: str, argv: Sequence[str], log: Path, cwd: str | Path = "/",
              env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
        """Starts ``argv`` on ``host`` in a session of its own, output to ``log``."""
        with log.open("ab") as sink:
            return subprocess.Popen(self[host].command(argv, cwd), stdout=sink,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env or self.env(), start_new_session=True, **popen)

    def run(self, host: str, argv: Sequence[str], cwd: str | Path = "/", timeout: float = 60,
            check: bool = True, env: dict[str, str] | None = None,
            **kw) -> subprocess.CompletedProcess:
        """Runs ``argv`` on ``host``; returns the completed process (text output)."""
        run = subprocess.run(self[host].command(argv, cwd), capture_output=True, text=True,
                             env=env or self.env(), timeout=timeout, check=False, **kw)
        if check and run.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} on {host} failed ({run.returncode}): "
                                 f"{run.stdout[-2000:]}{run.stderr[-2000:]}")
        return run

    def tmp(self, host: str) -> Path:
        """Where this process sees the private ``/tmp`` of compute host ``host``."""
        return self.base / "hosts" / host / "tmp"

    def tmp_files(self, host: str) -> list[str]:
        """The entries of compute host ``host``'s ``/tmp``, less the mount point of a
        checkout under ``/tmp`` (see ``_holder``)."""
        ours = REPO.relative_to("/tmp").parts[0] if REPO.is_relative_to("/tmp") else None
        return sorted(p.name for p in self.tmp(host).iterdir() if p.name != ours)

    @contextlib.contextmanager
    def paced(self, rate: str) -> Iterator[None]:
        """Limits what every compute host sends, to the others and to itself, to ``rate``
        each (``tc`` syntax, e.g. ``"1mbit"``), so that rounds take a while whichever peers
        run; lifted on exit."""
        nodes = [list(self.hosts).index(h.name) for h in self.nodes]
        try:
            for i in nodes:
                for device in ("eth0", "lo"):
                    self.net.limit_rate(i, rate, device)
            yield
        finally:
            for i in nodes:
                for device in ("eth0", "lo"):
                    subprocess.run([*self.net.exec_prefix(i), "tc", "qdisc", "del", "dev",
                                    device, "root"], capture_output=True, timeout=30,
                                   check=False)


def _holder(netns: str, name: str, base: Path, venv: Path, private_tmp: bool
            ) -> subprocess.Popen:
    """Starts the process that holds a host's namespaces; returns it once they are ready."""
    own = base / "hosts" / name
    (own / "tmp").mkdir(parents=True)
    (own / "tmp").chmod(0o1777)
    mounts = [f"hostname {name}",
              f"mount --bind {base}/etc/hosts /etc/hosts",
              f"mount --bind {base}/etc/ssh_config /etc/ssh/ssh_config",
              "mount -t tmpfs -o mode=0755 gossip-opt /opt",
              f"mkdir {VENV}", f"mount --bind {venv} {VENV}"]
    if private_tmp:
        if REPO.is_relative_to("/tmp"):
            # A checkout under /tmp (CI's clone may be) stays visible at its own path: the
            # editable install of the tests' virtual environment imports gossip from it.
            inside = own / "tmp" / REPO.relative_to("/tmp")
            inside.mkdir(parents=True)
            mounts.append(f"mount --bind {REPO} {inside}")
        mounts.append(f"mount --rbind {own}/tmp /tmp")
    script = " && ".join([*mounts, "echo ready", "exec sleep infinity"])
    # not `ip netns exec`: it remounts /sys, which hides the cgroup file systems slurmd needs
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "--", "unshare", "--uts",
                             "--mount", "--propagation", "slave", "--", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    ready = proc.stdout.readline().strip() == b"ready"
    proc.stdout.close()
    if not ready:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"host {name}: {proc.stderr.read().decode(errors='replace')}")
    proc.stderr.close()
    return proc


def _remove_leftovers() -> None:
    """Removes base directories of earlier test runs whose process is gone."""
    for path in BASE_DIR.glob(f"{BASE_PREFIX}*"):
        m = re.match(rf"{BASE_PREFIX}(\d+)-", path.name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def real_hosts(names: Sequence[str], tag: str) -> Iterator[Cluster]:
    """Creates the hosts; on exit kills everything on them and removes every file.

    Args:
        names: host names; the first is the login host (it sees this machine's ``/tmp``).
        tag: the network's tag (:func:`netns.bridged_namespaces`).
    """
    _remove_leftovers()
    base = Path(tempfile.mkdtemp(prefix=f"{BASE_PREFIX}{os.getpid()}-", dir=BASE_DIR))
    base.chmod(0o755)
    try:
        with bridged_namespaces(len(names), tag) as net:
            (base / "etc").mkdir()
            (base / "etc" / "hosts").write_text("127.0.0.1 localhost\n" + "".join(
                f"{a} {n}\n" for a, n in zip(net.addresses, names, strict=True)))
            (base / "etc" / "ssh_config").write_text("# no ssh key yet\n")
            venv = Path(sys.prefix)
            hosts, holders = {}, []
            try:
                for i, (name, ns, address) in enumerate(zip(names, net.names, net.addresses,
                                                            strict=True)):
                    holders.append(_holder(ns, name, base, venv, private_tmp=i > 0))
                    hosts[name] = Host(name, address, ns, holders[-1].pid)
                yield Cluster(base, hosts, venv, net)
            finally:
                for proc in holders:
                    proc.kill()
                    proc.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- daemons ---------------------------------------------------------------------------------


def _stop(procs: Iterable[subprocess.Popen]) -> None:
    """Stops process groups: SIGTERM to all, then SIGKILL to any still there after 10 s."""
    procs = list(procs)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def _daemon(cluster: Cluster, host: str, argv: Sequence[str], log: Path
            ) -> Iterator[subprocess.Popen]:
    """Runs a daemon in the foreground on ``host``; stops it (SIGTERM, then SIGKILL) on exit."""
    proc = cluster.popen(host, argv, log)
    try:
        yield proc
    finally:
        _stop([proc])


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True, capture_output=True, timeout=30)
    return path.with_suffix(".pub").read_text().split()[1]


SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {key}
PidFile none
AuthorizedKeysFile {authorized}
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
LogLevel VERBOSE
"""


class Sshd:
    """An OpenSSH sshd on each of some hosts (see :func:`sshd`).

    Attributes:
        cluster: the hosts.
        procs: the listening sshd of each host.
    """

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        """Starts sshd on host ``name`` and waits until the login host can log in there."""
        config = self.cluster.base / "etc" / f"sshd_config_{name}"
        self.procs[name] = self.cluster.popen(
            name, ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
            self.cluster.base / f"sshd-{name}.log")
        wait_until(lambda: self.cluster.run(self.cluster.login.name, ["ssh", name, "true"],
                                            check=False, timeout=30).returncode == 0,
                   30, f"sshd on {name}", interval=0.2)

    def kill(self, name: str) -> list[int]:
        """SIGKILLs every sshd process on host ``name``, the listener and each session's;
        returns their pids."""
        pids = list(self.cluster[name].processes("sshd"))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.procs.pop(name).wait(timeout=10)
        return pids

    def stop(self) -> None:
        """Stops every sshd (SIGTERM, then SIGKILL)."""
        _stop(self.procs.values())
        self.procs.clear()


@contextlib.contextmanager
def sshd(cluster: Cluster, hosts: Sequence[str] | None = None) -> Iterator[Sshd]:
    """Runs an OpenSSH sshd on each of ``hosts`` (default: the compute hosts).

    Every host's ssh then logs in to them as root with one throwaway client key, checking
    the throwaway host keys (``/etc/ssh/ssh_config`` of the hosts).
    """
    names = list(hosts) if hosts else [h.name for h in cluster.nodes]
    etc = cluster.base / "etc"
    client = etc / "id_ed25519"
    _keygen(client, "gossip-test-client")
    (etc / "authorized_keys").write_text(client.with_suffix(".pub").read_text())
    known = []
    for name in names:
        key = etc / f"ssh_host_{name}"
        known.append(f"{name},{cluster[name].address} ssh-ed25519 {_keygen(key, name)}\n")
        (etc / f"sshd_config_{name}").write_text(SSHD_CONFIG.format(
            address=cluster[name].address, key=key, authorized=etc / "authorized_keys"))
    (etc / "known_hosts").write_text("".join(known))
    (etc / "ssh_config").write_text(
        f"Host *\n    IdentityFile {client}\n    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {etc / 'known_hosts'}\n    StrictHostKeyChecking yes\n"
        "    BatchMode yes\n")  # the file the hosts see as /etc/ssh/ssh_config
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    daemons = Sshd(cluster)
    try:
        for name in names:
            daemons.start(name)
        yield daemons
    finally:
        daemons.stop()


SLURM_CONF = """\
ClusterName=gossiptest
SlurmctldHost={controller}({controller_address})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={dir}/ctld
SlurmctldPidFile={dir}/slurmctld.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdSpoolDir={dir}/%n
SlurmdPidFile={dir}/%n/slurmd.pid
SlurmdLogFile={dir}/%n/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
SlurmdTimeout=30
KillWait=5
{nodes}
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def slurm(cluster: Cluster, cpus: int = 16) -> Iterator[Path]:
    """Runs munged and slurmctld on the login host and one slurmd per compute host.

    Each compute host is a node (``NodeName`` = its name) that declares ``cpus`` CPUs
    (``SlurmdParameters=config_overrides``: more than it has, so the docs' ``#SBATCH``
    lines fit). Every command then gets ``SLURM_CONF``. Yields the directory of Slurm's
    files (logs: ``slurmctld.log``, ``NODE/slurmd.log``).
    """
    d = cluster.base / "slurm"
    (d / "ctld").mkdir(parents=True)
    munge = cluster.base / "munge"
    munge.mkdir(mode=0o755)
    subprocess.run(["mungekey", "--create", f"--keyfile={munge / 'munge.key'}"], check=True,
                   capture_output=True, timeout=30)
    socket = munge / "munge.socket"
    nodes = "".join(f"NodeName={h.name} NodeAddr={h.address} CPUs={cpus} State=UNKNOWN\n"
                    for h in cluster.nodes)
    for h in cluster.nodes:
        (d / h.name).mkdir()
    conf = d / "slurm.conf"
    login = cluster.login
    conf.write_text(SLURM_CONF.format(controller=login.name, controller_address=login.address,
                                      munge_socket=socket, dir=d, nodes=nodes))
    with contextlib.ExitStack() as stack:
        stack.enter_context(_daemon(cluster, login.name, [
            "munged", "--foreground", "--force", f"--socket={socket}",
            f"--key-file={munge / 'munge.key'}", f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"],
            munge / "munged.out"))
        wait_until(socket.exists, 30, "munged's socket")
        cluster.env_extra["SLURM_CONF"] = str(conf)
        stack.callback(cluster.env_extra.pop, "SLURM_CONF", None)
        stack.enter_context(_daemon(cluster, login.name, ["slurmctld", "-D", "-i"],
                                    d / "slurmctld.out"))
        for h in cluster.nodes:
            stack.enter_context(_daemon(cluster, h.name, ["slurmd", "-D", "-N", h.name],
                                        d / h.name / "slurmd.out"))
        states = lambda: cluster.run(login.name, ["sinfo", "-h", "-N", "-o", "%N %T"],  # noqa: E731
                                     check=False).stdout.split()
        wait_until(lambda: states().count("idle") == len(cluster.nodes), 60,
                   "every slurmd idle", interval=0.5)
        yield d
