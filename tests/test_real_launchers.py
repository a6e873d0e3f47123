"""Real OpenSSH, Slurm and Open MPI: the launches of docs/multihost.md, run as written there.

One cluster serves every test (module scope, ``tests/real_hosts.py``): a login host and two
nodes, ``node001`` and ``node002``, each a network namespace with its own host name,
``/etc/hosts`` and ``/tmp``, the tests' virtual environment at ``/opt/venv``; sshd on the
nodes, Slurm's slurmctld and munged on the login host and a slurmd on each node. The
commands are the doc's blocks marked ``<!-- tested: NAME -->`` (``tests/doc_blocks.py``),
run with bash in a work directory every host sees; the tests only add flags after the doc's
(later flags win: fewer rounds, a small model, short heartbeats) and write the config file
the doc's commands read.

Without the daemons or root these tests are skipped, and on CI (``CI=true``) they fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_blocks import doc_block
from peer_utils import records
from real_hosts import SYSTEM_PATH, Cluster, Sshd, missing, real_hosts, slurm, sshd, wait_until

ROUNDS = 150
SHORT = 40  # rounds of the runs that need not be compared with the undisturbed one
SMALL = ["--no-progress", "--rounds", str(ROUNDS), "--seed", "3", "--local-steps", "5",
         "--set", "model_options={hidden=[32]}", "--eval-every", "1000",
         "--heartbeat-timeout", "2", "--set", "heartbeat_interval=0.5",
         "--checkpoint-every", "5"]
RUN_TOML = """\
rounds = {rounds}
seed = 3
local_steps = 5
eval_every = 1000
[model_options]
hidden = [32]
"""
PACE = "512kbit"  # what each node may send, out and to itself: rounds of ~0.3 s
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
PEERS = range(4)


@dataclasses.dataclass
class Hosts:
    cluster: Cluster
    sshd: Sshd


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    lacks = missing()
    if lacks:
        reason = (f"needs {', '.join(lacks)} (Debian: apt-get install openssh-server "
                  "slurm-wlm munge openmpi-bin; run as root)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run these tests: {reason}")
        pytest.skip(reason)
    with real_hosts(["login", "node001", "node002"], "real") as cluster, \
            sshd(cluster) as daemons, slurm(cluster):
        yield Hosts(cluster, daemons)


@pytest.fixture
def cluster(hosts: Hosts) -> Iterator[Cluster]:
    """The cluster; after each test, no peer runs and no file is left in a node's /tmp."""
    yield hosts.cluster
    for node in hosts.cluster.nodes:
        wait_until(lambda n=node: not n.peers(), 30, f"the peers on {node.name} to exit")
        assert hosts.cluster.tmp_files(node.name) == []


# -- gossip launch --hostfile over real ssh ----------------------------------------------------


@dataclasses.dataclass
class Launch:
    work: Path
    proc: subprocess.Popen

    @property
    def out(self) -> Path:
        return self.work / "runs" / "lab"

    @property
    def log(self) -> str:
        return (self.work / "launch.log").read_text()

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"gossip launch still running after {timeout} s:\n"
                                 f"{self.log[-3000:]}") from None

    def rounds(self, peer: int) -> list[int]:
        return [r["round"] for r in records(self.out / f"peer-{peer:04d}.jsonl")]

    def summary(self) -> dict:
        return json.loads((self.out / "metrics.jsonl").read_text())


def start_launch(cluster: Cluster, name: str, *flags: str) -> Launch:
    """Starts the doc's ``gossip launch --hostfile`` block on the login host, with ``flags``
    after the doc's own."""
    work = cluster.work(name)
    script = doc_block("hostfile-launch").rstrip("\n") + " " + shlex.join(flags)
    return Launch(work, cluster.popen("login", [*AS_FROM_A_TERMINAL, "bash", "-c", script],
                                      work / "launch.log", cwd=work))


# Ctrl-C reaches the launcher as in a terminal. A test run started in the background
# (``pytest &``, CI runners) ignores SIGINT, and children inherit that; Python then installs
# no KeyboardInterrupt handler, so the launcher would ignore the Ctrl-C test's SIGINT. (An
# exec wrapper, not ``preexec_fn``: this process runs JAX's threads, and must not fork.)
AS_FROM_A_TERMINAL = [sys.executable, "-c", "import os, signal, sys; "
                      "signal.signal(signal.SIGINT, signal.SIG_DFL); "
                      "os.execvp(sys.argv[1], sys.argv[1:])"]


def finished_every_round(launch: Launch, peers=PEERS, rounds: int = ROUNDS) -> None:
    for i in peers:
        assert launch.rounds(i)[-1] == rounds and set(launch.rounds(i)) == set(
            range(1, rounds + 1)), (i, launch.rounds(i))


@pytest.fixture(scope="module")
def plain(hosts: Hosts) -> Launch:
    """The doc's launch, undisturbed (also the reference of the restart test)."""
    launch = start_launch(hosts.cluster, "plain", *SMALL)
    launch.wait()
    return launch


def test_hostfile_launch_over_real_ssh(plain, cluster):
    assert plain.proc.returncode == 0, plain.log[-3000:]
    finished_every_round(plain)
    summary = plain.summary()
    assert summary["peers_finished"] == 4 and summary["avg_model_acc"] > 0.85
    assert summary["restarts"] == 0 and summary["restarts_per_peer"] == [0, 0, 0, 0]
    assert "average-model test accuracy" in plain.log and "restarts  " in plain.log
    assert (plain.out / "peers.txt").read_text().split() == [
        "tcp://node001:29500", "tcp://node001:29501", "tcp://node002:29500",
        "tcp://node002:29501"]
    for i in PEERS:
        assert (plain.out / "params" / f"peer-{i:04d}.npz").is_file()
        assert f"gossip peer {i}: {ROUNDS} rounds in" in (
            plain.out / "logs" / f"peer-{i:04d}.log").read_text()


def test_hostfile_launch_async_with_keys_auto(cluster):
    # Async mode over real ssh hosts and CURVE: the mode reaches every host, and the peers'
    # push-sum mass is whole at the end (running sums, every last message taken in).
    launch = start_launch(cluster, "keys", *SMALL, "--rounds", "10", "--keys", "auto",
                          "--mode", "async", "--rule", "push_sum")
    assert launch.wait() == 0, launch.log[-3000:]
    assert sorted(p.name for p in (launch.out / "keys").iterdir()) == sorted(
        f"peer-{i:04d}.{ext}" for i in PEERS for ext in ("key", "key_secret"))
    last = [records(launch.out / f"peer-{i:04d}.jsonl")[-1] for i in PEERS]
    for i, r in zip(PEERS, last, strict=True):
        assert r["final"] and r["params_finite"] and r["final_missing"] == 0, r
        assert "refused" not in (launch.out / "logs" / f"peer-{i:04d}.log").read_text()
    assert sum(r["mass"] for r in last) == pytest.approx(4, abs=1e-4)
    assert launch.summary()["peers_finished"] == 4
    # the fixture checks that the run directories, with the secret keys, are gone


def test_restarts_bring_back_a_peer_killed_on_a_remote_host(plain, cluster):
    path = plain.work.parent / "restarts" / "runs" / "lab" / "peer-0002.jsonl"
    with cluster.paced(PACE):  # slow rounds: the others cannot finish before the restart
        launch = start_launch(cluster, "restarts", *SMALL, "--restarts", "2")
        wait_until(lambda: len(launch.rounds(2)) >= 12, 180, "round 12 of peer 2")
        victim = [pid for pid, cmd in cluster["node002"].peers().items() if "--id 2 " in cmd]
        assert len(victim) == 1
        os.kill(victim[0], signal.SIGKILL)
        wait_until(lambda: any(r["catch_ups"] for r in records(path)), 180,
                   "peer 2 to restart and catch up")
    # the rest of the run at full speed
    assert launch.wait() == 0, launch.log[-3000:]
    finished_every_round(launch, peers=[0, 1, 3])
    # the restarted peer resumed from its checkpoint, took its neighbours' round, finished
    resumed = records(launch.out / "peer-0002.jsonl")
    assert resumed[-1]["round"] == ROUNDS and resumed[-1]["catch_ups"] >= 1
    log = launch.log
    assert ("peer 2 on host node002 failed (exit code 255): (no message: ssh lost its "
            "connection, or the peer was killed by a signal)") in log
    assert "restarting it with --resume in 1 s (restart 1 of 2)" in log
    assert "restarts: peer 2 on host node002 1 (exit code 255)" in log
    summary = launch.summary()
    assert summary["restarts"] == 1 and summary["restarts_per_peer"] == [0, 0, 1, 0]
    assert summary["peers_finished"] == 4
    peer_log = (launch.out / "logs" / "peer-0002.log").read_text()
    assert "restarting peer 2 (--resume)" in peer_log and "resumed from" in peer_log
    assert "caught up from round" in peer_log
    reference = plain.summary()["avg_model_acc"]
    print(f"average-model accuracy: {summary['avg_model_acc']:.4f} with a peer killed and "
          f"restarted, {reference:.4f} undisturbed")
    assert abs(summary["avg_model_acc"] - reference) <= 0.01, (summary, reference)


def test_ctrl_c_stops_every_remote_peer_and_removes_the_run_directories(cluster):
    launch = start_launch(cluster, "ctrl-c", *SMALL, "--rounds", "100000")
    wait_until(lambda: all(launch.rounds(i) for i in PEERS), 180, "every peer's first round")
    os.killpg(launch.proc.pid, signal.SIGINT)  # Ctrl-C: to the launcher's process group
    assert launch.wait(timeout=120) == 130, launch.log[-3000:]
    for node in cluster.nodes:  # at once: the launcher has cleaned up before exiting
        assert node.peers() == {}
        assert cluster.tmp_files(node.name) == []
    assert "stopped; all 4 peers terminated" in launch.log
    assert "unreachable" not in launch.log and "lost host" not in launch.log


def test_a_lost_host_is_named_and_the_others_finish(hosts, cluster):
    with cluster.paced(PACE):
        launch = start_launch(cluster, "lost-host", *SMALL, "--rounds", str(SHORT))
        wait_until(lambda: len(launch.rounds(3)) >= 5, 180, "round 5 of peer 3")
        try:
            hosts.sshd.kill("node002")
            assert launch.wait() == 1, launch.log[-3000:]
        finally:
            hosts.sshd.start("node002")
    finished_every_round(launch, peers=[0, 1], rounds=SHORT)
    assert all(launch.rounds(i)[-1] < SHORT for i in (2, 3))
    remote_dir = next(line.split()[-1] for line in launch.log.splitlines()
                      if "run directory on the hosts" in line)
    assert ("gossip launch: lost host node002: the ssh of its peers 2, 3 exited with code "
            "255") in launch.log
    assert f"run directory {remote_dir} left on lost host node002" in launch.log
    assert "peer 2 on host node002 failed (exit code 255)" in launch.log
    assert launch.summary()["peers_finished"] == 2
    left = cluster.tmp("node002") / Path(remote_dir).name
    assert left.is_dir()  # as said; node001's is gone
    subprocess.run(["rm", "-rf", str(left)], check=True)


# -- Slurm: the doc's sbatch script --------------------------------------------------------------


def submit(cluster: Cluster, name: str, rounds: int) -> tuple[Path, str]:
    """Submits the doc's sbatch script as a 2-node x 2-task job; returns (work dir, job id).

    It is submitted from a shell without the virtual environment: the script activates it.
    """
    work = cluster.work(name)
    (work / "gossip.sbatch").write_text(doc_block("sbatch-script"))
    (work / "run.toml").write_text(RUN_TOML.format(rounds=rounds))
    env = {**cluster.env(), "PATH": SYSTEM_PATH}
    del env["VIRTUAL_ENV"]
    run = cluster.run("login", ["sbatch", "--parsable", "--nodes=2", "--ntasks-per-node=2",
                                "gossip.sbatch"], cwd=work, env=env)
    return work, run.stdout.strip()


def job_state(cluster: Cluster, job: str) -> str:
    return cluster.run("login", ["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"],
                       check=False).stdout.strip()


def test_sbatch_script_runs_to_the_end(cluster):
    work, job = submit(cluster, "sbatch", SHORT)
    wait_until(lambda: job_state(cluster, job) not in ("PENDING", "RUNNING", "COMPLETING"),
               300, f"job {job} to end", interval=0.2)
    log = (work / f"gossip-{job}.log").read_text()
    assert job_state(cluster, job) == "COMPLETED", log[-3000:]
    out = work / "runs" / f"slurm-{job}"
    for i in PEERS:
        assert [r["round"] for r in records(out / f"peer-{i:04d}.jsonl")] == list(
            range(1, SHORT + 1))
        assert f"gossip peer {i}: {SHORT} rounds in" in log


def test_scancel_stops_every_peer_on_every_node(cluster):
    work, job = submit(cluster, "scancel", 100000)
    out = work / "runs" / f"slurm-{job}"
    wait_until(lambda: all(records(out / f"peer-{i:04d}.jsonl") for i in PEERS), 180,
               "every peer's first round")
    assert sorted(len(node.peers()) for node in cluster.nodes) == [2, 2]
    cluster.run("login", ["scancel", job])
    wait_until(lambda: job_state(cluster, job) == "CANCELLED", 60, f"job {job} cancelled")
    wait_until(lambda: not any(node.peers() for node in cluster.nodes), 30,
               "every peer to exit")
    assert not any(node.processes("slurmstepd") for node in cluster.nodes)


# -- Open MPI -------------------------------------------------------------------------------------


def mpi_run(cluster: Cluster, name: str, host: str, block: str, files: dict[str, str],
            **env: str) -> Path:
    """Runs a doc's mpirun block on ``host`` next to ``files`` and a ``run.toml``; returns
    the work directory."""
    work = cluster.work(name)
    for file, text in {**files, "run.toml": RUN_TOML.format(rounds=SHORT)}.items():
        (work / file).write_text(text)
    run = cluster.run(host, ["bash", "-c", doc_block(block)], cwd=work, timeout=300,
                      env=cluster.env(**MPI_ENV, **env), check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for i in PEERS:
        assert [r["round"] for r in records(work / "runs" / "mpi" / f"peer-{i:04d}.jsonl")
                ] == list(range(1, SHORT + 1))
        assert f"gossip peer {i}: {SHORT} rounds in" in run.stdout
    return work


def test_mpirun_four_ranks_on_one_host(cluster):
    # the nodes have 2 cores, the doc's command starts 4 ranks: as its note says
    work = mpi_run(cluster, "mpi-one", "node001", "mpirun-one-host", {},
                   OMPI_MCA_rmaps_base_oversubscribe="1")
    assert (work / "peers.txt").read_text().split() == [
        f"tcp://127.0.0.1:{29500 + i}" for i in PEERS]


def test_mpirun_across_hosts_through_ssh(cluster):
    mpi_run(cluster, "mpi-hosts", "login", "mpirun-hosts", {"hosts": doc_block("mpi-hostfile")})
