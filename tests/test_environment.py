"""Rank, size and hosts from the variables that srun, mpirun and torchrun set."""

import os
import re

import pytest
from peer_utils import FAST, gossip_cmd, records, started

from gossip.errors import ConfigError
from gossip.launch.environment import (
    LaunchEnv,
    addresses_for_hosts,
    detect_launch_env,
    expand_nodelist,
    expand_tasks_per_node,
    hosts_by_rank,
    peer_identity,
)
from gossip.launch.local import free_ports

# What `srun` (sbatch -N 2, --ntasks-per-node 2) gives task 3.
SRUN = {
    "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
    "SLURM_NTASKS": "4", "SLURM_NPROCS": "4", "SLURMD_NODENAME": "node002",
    "SLURM_STEP_NODELIST": "node[001-002]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
    "SLURM_JOB_NODELIST": "node[001-002]", "SLURM_TASKS_PER_NODE": "2(x2)",
}
OMPI = {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
HYDRA = {"PMI_RANK": "2", "PMI_SIZE": "4", "PMI_FD": "7", "MPI_LOCALRANKID": "0"}
TORCHRUN = {"RANK": "6", "WORLD_SIZE": "8", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4",
            "MASTER_ADDR": "node001", "MASTER_PORT": "29400"}


def test_no_launcher_gives_none():
    assert detect_launch_env({"HOME": "/root", "PATH": "/usr/bin"}) is None


def test_slurm_gives_every_host():
    assert detect_launch_env(SRUN) == LaunchEnv(
        "slurm", 3, 4, 1, ("node001", "node001", "node002", "node002"))


def test_slurm_falls_back_to_job_variables_and_nprocs():
    env = {"SLURM_PROCID": "0", "SLURM_NPROCS": "3", "SLURM_JOB_NODELIST": "a,b",
           "SLURM_TASKS_PER_NODE": "2,1"}
    assert detect_launch_env(env) == LaunchEnv("slurm", 0, 3, None, ("a", "a", "b"))


def test_slurm_step_variables_win_over_the_job_ones():
    env = {**SRUN, "SLURM_JOB_NODELIST": "node[001-004]", "SLURM_TASKS_PER_NODE": "1(x4)"}
    assert detect_launch_env(env).hosts == ("node001", "node001", "node002", "node002")


def test_slurm_without_node_list_has_no_hosts():
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1"}
    assert detect_launch_env(env) == LaunchEnv("slurm", 1, 2, 1, None)


def test_slurm_counts_only_inside_srun():
    env = {k: v for k, v in SRUN.items() if k != "SLURM_PROCID"}
    assert detect_launch_env(env) is None


@pytest.mark.parametrize("contradiction", [
    {"SLURM_LOCALID": "0"},              # srun -m cyclic: task 3 is the first on its node
    {"SLURMD_NODENAME": "node001"},
])
def test_slurm_layout_other_than_block_drops_the_hosts(contradiction):
    found = detect_launch_env({**SRUN, **contradiction})
    assert (found.rank, found.world_size, found.hosts) == (3, 4, None)


def test_open_mpi():
    assert detect_launch_env(OMPI) == LaunchEnv("openmpi", 5, 8, 1, None)


def test_mpich_and_intel_mpi():
    assert detect_launch_env(HYDRA) == LaunchEnv("mpich", 2, 4, 0, None)
    cray = {"PMI_RANK": "2", "PMI_SIZE": "4", "PMI_LOCAL_RANK": "1"}
    assert detect_launch_env(cray) == LaunchEnv("mpich", 2, 4, 1, None)


def test_pmix_needs_a_size():
    assert detect_launch_env({"PMIX_RANK": "1", "PMIX_NAMESPACE": "prterun-x-1"}) is None
    env = {"PMIX_RANK": "1", "PMIX_SIZE": "2"}
    assert detect_launch_env(env) == LaunchEnv("pmix", 1, 2, None, None)


def test_torchrun():
    assert detect_launch_env(TORCHRUN) == LaunchEnv("torchrun", 6, 8, 2, None)


def test_a_rank_without_its_size_is_not_a_launcher():
    assert detect_launch_env({"RANK": "3"}) is None
    assert detect_launch_env({"RANK": "", "WORLD_SIZE": ""}) is None


@pytest.mark.parametrize(("env", "source"), [
    ({**SRUN, **OMPI}, "openmpi"),                  # mpirun inside a Slurm allocation
    ({**SRUN, **HYDRA}, "mpich"),                   # mpiexec (hydra) inside an allocation
    ({**SRUN, **TORCHRUN}, "torchrun"),             # srun starting one torchrun per node
    ({**HYDRA, **TORCHRUN}, "mpich"),
    ({**OMPI, **HYDRA, **TORCHRUN}, "openmpi"),
    ({**SRUN, "PMIX_RANK": "3", "PMIX_NAMESPACE": "slurm.pmix.4242.0"}, "slurm"),
    ({**OMPI, "PMIX_RANK": "5", "PMIX_SIZE": "8"}, "openmpi"),
    ({**HYDRA, "PMIX_RANK": "5", "PMIX_SIZE": "8"}, "pmix"),
])
def test_innermost_launcher_wins(env, source):
    assert detect_launch_env(env).source == source


def test_sruns_own_pmi2_is_slurm():
    # srun --mpi=pmi2 exports PMI_RANK/PMI_SIZE itself, with PMI_JOBID=JOBID.STEPID
    env = {**SRUN, "PMI_RANK": "3", "PMI_SIZE": "4", "PMI_JOBID": "4242.0", "PMI_FD": "9"}
    assert detect_launch_env(env).source == "slurm"
    assert detect_launch_env(env).hosts is not None
    assert detect_launch_env({**env, "PMI_JOBID": "kvs_77_0"}).source == "mpich"


@pytest.mark.parametrize(("env", "message"), [
    ({**SRUN, "SLURM_PROCID": "abc"}, "SLURM_PROCID='abc' is not an integer"),
    ({**SRUN, "SLURM_NTASKS": "four"}, "SLURM_NTASKS='four' is not an integer"),
    ({**SRUN, "SLURM_PROCID": "4"}, "SLURM_PROCID='4' is outside 0..3 (SLURM_NTASKS='4')"),
    ({**SRUN, "SLURM_PROCID": "-1"}, "SLURM_PROCID='-1' is outside 0..3"),
    ({**SRUN, "SLURM_LOCALID": "x"}, "SLURM_LOCALID='x' is not an integer"),
    ({**OMPI, "OMPI_COMM_WORLD_RANK": "8"}, "OMPI_COMM_WORLD_RANK='8' is outside 0..7"),
    ({**OMPI, "OMPI_COMM_WORLD_SIZE": "0", "OMPI_COMM_WORLD_RANK": "0"},
     "OMPI_COMM_WORLD_SIZE='0' must be >= 1"),
    ({**HYDRA, "PMI_RANK": "2.0"}, "PMI_RANK='2.0' is not an integer"),
    ({**TORCHRUN, "WORLD_SIZE": " 8"}, "WORLD_SIZE=' 8' is not an integer"),
    ({**SRUN, "SLURM_STEP_NODELIST": "node[1-"},
     "SLURM_STEP_NODELIST='node[1-' is malformed: unclosed '['"),
    ({**SRUN, "SLURM_STEP_NODELIST": "node[3-1]"},
     "SLURM_STEP_NODELIST='node[3-1]' is malformed: descending range '3-1'"),
    ({**SRUN, "SLURM_STEP_TASKS_PER_NODE": "2(x"},
     "SLURM_STEP_TASKS_PER_NODE='2(x' is malformed: bad entry '2(x'"),
    ({**SRUN, "SLURM_STEP_NODELIST": "node[001-003]"},
     "SLURM_STEP_NODELIST='node[001-003]' names 3 nodes but "
     "SLURM_STEP_TASKS_PER_NODE='2(x2)' gives 2 task counts"),
    ({**SRUN, "SLURM_STEP_TASKS_PER_NODE": "2,1"},
     "SLURM_STEP_TASKS_PER_NODE='2,1' adds up to 3 tasks but SLURM_NTASKS='4'"),
])
def test_bad_variables_are_named(env, message):
    with pytest.raises(ConfigError) as err:
        detect_launch_env(env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("nodelist", "hosts"), [
    ("gpu5", ["gpu5"]),
    ("a,b.cluster,c-1", ["a", "b.cluster", "c-1"]),
    ("node[001-003,007],gpu5", ["node001", "node002", "node003", "node007", "gpu5"]),
    ("n[8-10]", ["n8", "n9", "n10"]),
    ("n[08-10]", ["n08", "n09", "n10"]),
    ("n[7]", ["n7"]),
    ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
    ("x[1,3]y,z[0-1]", ["x1y", "x3y", "z0", "z1"]),
])
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize(("nodelist", "reason"), [
    ("node[1-", "unclosed '['"),
    ("node[3-1]", "descending range '3-1'"),
    ("node[]", "bad range ''"),
    ("node[a-b]", "bad range 'a-b'"),
    ("node[1-2-3]", "bad range '1-2-3'"),
    ("node1]", "']' without '['"),
    ("node[1[2]]", "nested '['"),
    ("a,,b", "empty node name"),
    ("", "empty node name"),
    ("node 1", "bad character in node name 'node 1'"),
    ("n[0-99999999]", "more than 1048576 nodes"),
    ("n[0-999999,0-999999]", "more than 1048576 nodes"),
    ("a[0-9999]b[0-9999]", "more than 1048576 nodes"),
])
def test_malformed_nodelist_is_named(nodelist, reason):
    with pytest.raises(ConfigError) as err:
        expand_nodelist(nodelist)
    assert f"malformed node list {nodelist!r}: {reason}" in str(err.value)


@pytest.mark.parametrize(("spec", "counts"), [
    ("4", [4]),
    ("2(x3),1", [2, 2, 2, 1]),
    ("1,3(x2)", [1, 3, 3]),
])
def test_expand_tasks_per_node(spec, counts):
    assert expand_tasks_per_node(spec) == counts


@pytest.mark.parametrize("spec", ["", "2(x", "2(3)", "0", "2(x0)", "a", "2,,1"])
def test_malformed_tasks_per_node_is_named(spec):
    with pytest.raises(ConfigError, match=re.escape(f"malformed tasks-per-node spec {spec!r}")):
        expand_tasks_per_node(spec)


def test_hosts_by_rank_is_block_distribution():
    assert hosts_by_rank(["a", "b", "c"], [2, 1, 3]) == ["a", "a", "b", "c", "c", "c"]
    with pytest.raises(ConfigError, match="2 nodes but 3 tasks-per-node entries"):
        hosts_by_rank(["a", "b"], [1, 1, 1])


def test_addresses_count_ports_per_host():
    assert addresses_for_hosts(["a", "a", "b"], 29500) == [
        "tcp://a:29500", "tcp://a:29501", "tcp://b:29500"]
    assert addresses_for_hosts(["a", "b", "a"], 7100) == [
        "tcp://a:7100", "tcp://b:7100", "tcp://a:7101"]
    assert addresses_for_hosts([], 7100) == []


def test_slurm_hosts_to_addresses():
    hosts = detect_launch_env(SRUN).hosts
    assert addresses_for_hosts(hosts, 29500) == [
        "tcp://node001:29500", "tcp://node001:29501",
        "tcp://node002:29500", "tcp://node002:29501"]


def test_ports_must_fit():
    assert addresses_for_hosts(["a", "a"], 65534)[-1] == "tcp://a:65535"
    with pytest.raises(ConfigError, match="with 3 peers on host 'a' needs ports up to 65536"):
        addresses_for_hosts(["a", "a", "b", "a"], 65534)
    with pytest.raises(ConfigError, match="port_base must be between 1 and 65535, got 0"):
        addresses_for_hosts(["a"], 0)


# -- peer_identity: flags first, then the launcher ---------------------------------------------

SRUN_2 = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_STEP_NODELIST": "node[07-08]",
          "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}


def test_identity_under_srun_needs_no_flags():
    assert peer_identity(None, None, 7000, SRUN_2) == (
        1, ["tcp://node07:7000", "tcp://node08:7000"])


def test_explicit_flags_win_over_the_launcher():
    assert peer_identity(0, "tcp://a:1,tcp://b:2,tcp://c:3", 7000, SRUN_2) == (
        0, ["tcp://a:1", "tcp://b:2", "tcp://c:3"])


def test_mpirun_takes_the_rank_and_needs_the_peer_list():
    env = {"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3"}
    assert peer_identity(None, "tcp://a:1,tcp://b:2,tcp://c:3", 7000, env)[0] == 2
    with pytest.raises(ConfigError, match="--peers is required: openmpi does not tell"):
        peer_identity(None, None, 7000, env)
    with pytest.raises(ConfigError, match="lists 2 peers, but the launcher"):
        peer_identity(None, "tcp://a:1,tcp://b:2", 7000, env)


def test_without_a_launcher_id_and_peers_are_required():
    with pytest.raises(ConfigError, match="--id is required"):
        peer_identity(None, "tcp://a:1,tcp://b:2", 7000, {})
    with pytest.raises(ConfigError, match="--peers is required"):
        peer_identity(0, None, 7000, {})
    with pytest.raises(ConfigError, match="peer id must be between 0 and 1"):
        peer_identity(5, "tcp://a:1,tcp://b:2", 7000, {})


def test_two_peers_started_like_srun_find_each_other(tmp_path):
    """End to end: `gossip peer` with only Slurm's variables (no --id, no --peers)."""
    base = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI"))}
    env |= {"SLURM_NTASKS": "2", "SLURM_STEP_NODELIST": "localhost",
            "SLURM_STEP_TASKS_PER_NODE": "2"}
    cmd = gossip_cmd("peer", "--port-base", str(base), "--out", str(tmp_path), "--rounds", "3",
                     "--checkpoint-every", "0", *FAST)
    with started(cmd, tmp_path / "0.log", env=env | {"SLURM_PROCID": "0"}) as p0, \
         started(cmd, tmp_path / "1.log", env=env | {"SLURM_PROCID": "1"}) as p1:
        assert p0.wait(timeout=120) == 0 and p1.wait(timeout=120) == 0
    for i in (0, 1):
        last = records(tmp_path / f"peer-{i:04d}.jsonl")[-1]
        assert (last["peer"], last["round"], last["messages_missing"]) == (i, 3, 0)
        assert last["messages_received"] == 3  # a ring of 2: one in-neighbour
