"""``gossip launch --hostfile``: hostfile, remote commands, and whole runs over a stand-in ssh.

The end-to-end tests run the "hosts" as network namespaces (tests/netns.py) and put a
stand-in ``ssh`` first on PATH: it skips ssh's options, logs each call, and runs the remote
command with ``sh -c`` in the host's namespace, in a session of its own and with a clean
environment, as sshd would. Like real ssh, it exits 255 on SIGTERM without signalling the
remote command, which then only sees its stdin close.
"""

import contextlib
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from netns import Network, bridged_namespaces, netns_available
from peer_utils import FAST, gossip_cmd, processes_mentioning, records, started, wait_for

from gossip.errors import ConfigError
from gossip.launch.hostfile import Host, Slot, assign, parse_hostfile, read_hostfile
from gossip.launch.remote import (
    SshOptions,
    cleanup_command,
    forwarded_env,
    gather_command,
    peer_remote_command,
    ssh_command,
    write_file_command,
)
from gossip.launch.ssh import check_options

ROOT = Path(__file__).resolve().parent.parent

# -- hostfile ---------------------------------------------------------------------------------


def test_hostfile_slots_comments_and_blank_lines():
    text = "# lab machines\n\n10.0.0.2 slots=2\n  gpu-box   # one slot\nbox-3 slots=3  # c\n"
    assert parse_hostfile(text, "H") == [Host("10.0.0.2", 2, "H line 3"),
                                         Host("gpu-box", 1, "H line 4"),
                                         Host("box-3", 3, "H line 5")]


@pytest.mark.parametrize(("line", "message"), [
    ("a slots=two", "H line 2: expected 'slots=K' after the host, got 'slots=two'"),
    ("a slots=0", "H line 2: slots must be >= 1, got 0"),
    ("a slots=2 gpus=1", "H line 2: expected 'HOST' or 'HOST slots=K'"),
    ("a cpus=2", "H line 2: expected 'slots=K' after the host, got 'cpus=2'"),
    ("-oProxyCommand=x", "H line 2: '-oProxyCommand=x' is not a host name or address"),
    ("me@box", "H line 2: 'me@box' is not a host name or address"),
    ("b slots=3", "H line 2: host b is already listed on line 1; give it slots=K once"),
])
def test_hostfile_errors_name_the_line(line, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_hostfile(f"b slots=2\n{line}\n", "H")


def test_hostfile_needs_two_slots_and_a_readable_file(tmp_path):
    with pytest.raises(ConfigError, match="H has 1 slot"):
        parse_hostfile("# only one\nbox\n", "H")
    with pytest.raises(ConfigError, match="cannot read the hostfile"):
        read_hostfile(tmp_path / "missing")


def test_ids_follow_the_file_and_ports_count_per_host():
    hosts = parse_hostfile("a slots=2\n10.0.0.9\nfe80::1 slots=2\n")
    assert assign(hosts, 29500) == [
        Slot(0, "a", 29500, "tcp://a:29500"),
        Slot(1, "a", 29501, "tcp://a:29501"),
        Slot(2, "10.0.0.9", 29500, "tcp://10.0.0.9:29500"),
        Slot(3, "fe80::1", 29500, "tcp://[fe80::1]:29500"),
        Slot(4, "fe80::1", 29501, "tcp://[fe80::1]:29501"),
    ]
    with pytest.raises(ConfigError, match="line 1: .*tcp://a:65536"):
        assign(hosts, 65535)


# -- remote commands --------------------------------------------------------------------------


def test_forwarded_environment():
    environ = {"GOSSIP_X": "1", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--a --b", "HOME": "/h",
               "PATH": "/bin", "OMP_NUM_THREADS": "2", "WANDB_KEY": "k"}
    assert forwarded_env(environ, ["WANDB_KEY", "EXTRA=a=b", "EMPTY="]) == {
        "EMPTY": "", "EXTRA": "a=b", "GOSSIP_X": "1", "JAX_PLATFORMS": "cpu",
        "OMP_NUM_THREADS": "2", "WANDB_KEY": "k", "XLA_FLAGS": "--a --b"}
    with pytest.raises(ConfigError, match="--env NOPE: NOPE is not set"):
        forwarded_env(environ, ["NOPE"])
    with pytest.raises(ConfigError, match="'1X' is not a variable name"):
        forwarded_env(environ, ["1X=2"])


def test_remote_commands_quote_everything():
    opts = SshOptions(ssh="ssh -F /my cfg", ssh_options=("ConnectTimeout=5",))
    assert ssh_command(opts, "box", "true") == [
        "ssh", "-F", "/my", "cfg", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "box",
        "true"]
    cmd = peer_remote_command(Slot(3, "box", 29501, "tcp://box:29501"), "/tmp/run 1",
                              {"GOSSIP_M": "it's $HOME", "XLA_FLAGS": "--a --b"},
                              "~/venv/bin/python -m gossip", "info")
    assert cmd == ("cd '/tmp/run 1' && echo $$ > peer-0003.pid && "
                   "exec env 'GOSSIP_M=it'\"'\"'s $HOME' "
                   "'XLA_FLAGS=--a --b' ~/venv/bin/python -m gossip peer --id 3 "
                   "--peers '/tmp/run 1/peers.txt' --config '/tmp/run 1/config.toml' "
                   "--log-level info --stream-metrics --watch-stdin")
    words = shlex.split(cmd)
    assert words[words.index("env") + 1] == "GOSSIP_M=it's $HOME"
    assert write_file_command("/tmp/r", "peers.txt") == "mkdir -p /tmp/r && cat > /tmp/r/peers.txt"
    assert gather_command("/tmp/r", ["peer-0001.jsonl", "params/peer-0001.npz"]) == (
        "cd /tmp/r && tar -cf - peer-0001.jsonl params/peer-0001.npz")


def test_cleanup_stops_only_the_runs_peers_and_removes_the_run_directory(tmp_path):
    run_dir = tmp_path / "run dir"
    run_dir.mkdir()
    sleeper = "import time; time.sleep(120)"
    ours = subprocess.Popen([sys.executable, "-c", sleeper, "--peers", f"{run_dir}/peers.txt"])
    other = subprocess.Popen([sys.executable, "-c", sleeper, "--peers", "/elsewhere/peers.txt"])
    try:
        (run_dir / "peer-0000.pid").write_text(f"{ours.pid}\n")
        (run_dir / "peer-0001.pid").write_text(f"{other.pid}\n")  # a reused pid: not ours
        (run_dir / "peer-0002.pid").write_text("999999999\n")  # long gone
        (run_dir / "peer-0000.jsonl").write_text("{}\n")
        keep = subprocess.run(cleanup_command(str(run_dir), remove=False), shell=True,
                              timeout=30)
        assert keep.returncode == 0
        assert ours.wait(timeout=10) == -signal.SIGTERM
        assert other.poll() is None
        assert sorted(p.name for p in run_dir.iterdir()) == ["peer-0000.jsonl"]
        gone = subprocess.run(cleanup_command(str(run_dir), remove=True), shell=True,
                              timeout=30)
        assert gone.returncode == 0 and not run_dir.exists()
        again = subprocess.run(cleanup_command(str(run_dir), remove=True), shell=True,
                               timeout=30)
        assert again.returncode == 0  # nothing there: nothing to do
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()


def test_options_are_checked():
    here = SshOptions(ssh=sys.executable)  # any program that exists
    assert re.fullmatch(r"/tmp/gossip-[0-9a-f]{8}", check_options(here))
    assert check_options(dataclasses.replace(here, remote_dir="/srv/run")) == "/srv/run"
    for change, message in [
            ({"remote_dir": "runs/x"}, "--remote-dir runs/x: must be an absolute path"),
            ({"ssh": "no-such-ssh-here"}, "--ssh 'no-such-ssh-here': no such program"),
            ({"ssh": "ssh 'x"}, "--ssh \"ssh 'x\": No closing quotation"),
            ({"remote_gossip": ""}, "--remote-gossip '': empty command")]:
        with pytest.raises(ConfigError, match="^" + re.escape(message)):
            check_options(dataclasses.replace(here, **change))


def test_launch_needs_exactly_one_of_local_and_hostfile(tmp_path):
    def launch(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(gossip_cmd("launch", *args), capture_output=True, text=True,
                              timeout=60, cwd=ROOT)

    both = launch("--local", "2", "--hostfile", "h")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    assert "one of the arguments --local --hostfile is required" in launch().stderr
    ssh_flag = launch("--local", "2", "--ssh", "x", "--out", str(tmp_path / "o"))
    assert ssh_flag.returncode == 2
    assert "gossip: error: --ssh only applies with --hostfile" in ssh_flag.stderr
    (tmp_path / "hosts").write_text("a slots=2\nb slots=2\n")
    wrong = launch("--hostfile", str(tmp_path / "hosts"), "--set", "peers=3",
                   "--out", str(tmp_path / "o"))
    assert wrong.returncode == 2
    assert "--set sets peers = 3, but this command has peers = 4" in wrong.stderr
    assert not (tmp_path / "o").exists()


# -- whole runs over the stand-in ssh ---------------------------------------------------------

FAKE_SSH = """\
#!{python}
import json, os, signal, subprocess, sys

args = sys.argv[1:]
options = []
while args and args[0].startswith("-"):
    flag = args.pop(0)
    options.append(flag + " " + args.pop(0) if flag in ("-o", "-p", "-i", "-l", "-F") else flag)
host, command = args[0], " ".join(args[1:])
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(json.dumps({{"host": host, "options": options, "command": command}}) + "\\n")
namespaces = json.loads(open(os.environ["FAKE_SSH_HOSTS"]).read())
if host not in namespaces:
    print(f"ssh: Could not resolve hostname {{host}}", file=sys.stderr)
    sys.exit(255)
clean = {{"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}}
remote = subprocess.Popen(["ip", "netns", "exec", namespaces[host], "sh", "-c", command],
                          env=clean, start_new_session=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(255))
code = remote.wait()
sys.exit(code if code >= 0 else 255)
"""

REMOTE_GOSSIP = """\
#!/bin/sh
env > "env-$$"
{fail}
PYTHONPATH={root} exec {python} -m gossip "$@"
"""

FAIL_PEER_2 = 'if [ "$3" = 2 ]; then echo "remote-gossip: peer 2 will not start" >&2; exit 3; fi'


def _setup(tmp_path: Path, net: Network | None, fail: str = "", slots: int = 2
           ) -> tuple[list[str], dict[str, str], Path]:
    """The launch command, its environment and the remote run directory.

    The hostfile lists the hosts of ``net`` (``slots`` each), or, without ``net``, two hosts
    that the stand-in ssh cannot reach.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH.format(python=sys.executable))
    (bin_dir / "remote-gossip").write_text(REMOTE_GOSSIP.format(
        fail=fail, root=shlex.quote(str(ROOT)), python=shlex.quote(sys.executable)))
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    addresses = net.addresses if net else ["nowhere-1", "nowhere-2"]
    namespaces = dict(zip(net.addresses, net.names, strict=True)) if net else {}
    (tmp_path / "hosts.json").write_text(json.dumps(namespaces))
    (tmp_path / "hosts").write_text("# two hosts\n" + "".join(
        f"{a} slots={slots}\n" for a in addresses))
    remote_dir = tmp_path / "remote"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FAKE_SSH_LOG": str(tmp_path / "ssh.log"),
           "FAKE_SSH_HOSTS": str(tmp_path / "hosts.json"),
           "GOSSIP_TEST_MARKER": "it's a \"marker\" $HOME", "JAX_PLATFORMS": "cpu",
           "NOT_FORWARDED": "secret"}
    cmd = gossip_cmd("launch", "--hostfile", str(tmp_path / "hosts"), "--out",
                     str(tmp_path / "out"), "--remote-dir", str(remote_dir),
                     "--remote-gossip", str(bin_dir / "remote-gossip"), "--env", "EXTRA=1",
                     "--ssh-option", "StrictHostKeyChecking=no", "--no-progress", *FAST)
    return cmd, env, remote_dir


def _kill_mentioning(text: str) -> None:
    for pid in processes_mentioning(text):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _ssh_calls(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "ssh.log").read_text().splitlines()]


def test_a_host_that_cannot_be_prepared_stops_the_launch(tmp_path):
    cmd, env, _ = _setup(tmp_path, None)
    run = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert (f"cannot write {tmp_path}/remote/peers.txt on host nowhere-1 (exit code 255): "
            "ssh: Could not resolve hostname nowhere-1") in run.stderr
    assert all("--id" not in c["command"] for c in _ssh_calls(tmp_path))


needs_netns = pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns`")


@needs_netns
def test_four_peers_on_two_hosts(tmp_path):
    """Also CurveZMQ with --keys auto: the keys are made, sent, used."""
    rounds = 6
    with bridged_namespaces(2, "ssh") as net:
        cmd, env, remote_dir = _setup(tmp_path, net)
        cmd += ["--rounds", str(rounds), "--round-deadline", "2", "--keys", "auto"]
        try:
            with started(cmd, tmp_path / "launch.log", env=env, cwd=ROOT) as launcher:
                code = launcher.wait(timeout=150)
            assert code == 0, (tmp_path / "launch.log").read_text()
            assert processes_mentioning(str(tmp_path)) == []
        finally:
            _kill_mentioning(str(tmp_path))
    a, b = net.addresses
    assert (remote_dir / "peers.txt").read_text().split() == [
        f"tcp://{a}:29500", f"tcp://{a}:29501", f"tcp://{b}:29500", f"tcp://{b}:29501"]
    calls = _ssh_calls(tmp_path)
    assert all(c["options"][:1] == ["-o BatchMode=yes"] for c in calls)
    assert all("-o StrictHostKeyChecking=no" in c["options"] for c in calls)
    started_on = {}
    for c in calls:
        words = shlex.split(c["command"])
        if "--id" in words:
            i = int(words[words.index("--id") + 1])
            assert words[:10] == ["cd", str(remote_dir), "&&", "echo", "$$", ">",
                                  f"peer-{i:04d}.pid", "&&", "exec", "env"]
            assert words[-4:] == ["--stream-metrics", "--watch-stdin", "--keys",
                                  f"{remote_dir}/keys"]
            started_on[int(words[words.index("--id") + 1])] = c["host"]
    assert started_on == {0: a, 1: a, 2: b, 3: b}
    writes = sorted((c["host"], c["command"].rsplit("/", 1)[1]) for c in calls
                    if "cat >" in c["command"])
    assert writes == sorted((h, f) for h in (a, b) for f in ("config.toml", "peers.txt"))
    unpacks = [c["host"] for c in calls if c["command"].endswith(f"-C {remote_dir}/keys")]
    assert sorted(unpacks) == [a, b]
    # both "hosts" share this file system: each wrote its own secret keys into one directory
    keys = remote_dir / "keys"
    assert sorted(p.name for p in keys.iterdir()) == sorted(
        f"peer-{i:04d}.{ext}" for i in range(4) for ext in ("key", "key_secret"))
    assert (keys.stat().st_mode & 0o777) == 0o700
    assert all((keys / f"peer-{i:04d}.key_secret").stat().st_mode & 0o777 == 0o600
               for i in range(4))
    assert all((keys / f"peer-{i:04d}.key").read_bytes()
               == (tmp_path / "out" / "keys" / f"peer-{i:04d}.key").read_bytes()
               for i in range(4))
    gathers = [c for c in calls if "tar -cf -" in c["command"]]
    assert sorted(c["host"] for c in gathers) == [a, b]
    envs = [p.read_text().splitlines() for p in remote_dir.glob("env-*")]
    assert len(envs) == 4
    for lines in envs:
        assert "GOSSIP_TEST_MARKER=it's a \"marker\" $HOME" in lines
        assert "EXTRA=1" in lines and "JAX_PLATFORMS=cpu" in lines
        assert not any(line.startswith("NOT_FORWARDED=") for line in lines)
    out = tmp_path / "out"
    for i in range(4):
        assert [r["round"] for r in records(out / f"peer-{i:04d}.jsonl")] == list(
            range(1, rounds + 1))
        assert (out / "params" / f"peer-{i:04d}.npz").is_file()
        assert f"gossip peer {i}: {rounds} rounds in" in (
            out / "logs" / f"peer-{i:04d}.log").read_text()
    assert json.loads((out / "metrics.jsonl").read_text())["peers_finished"] == 4
    assert "average-model test accuracy" in (tmp_path / "launch.log").read_text()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in names for n in net.names)


@needs_netns
def test_a_failing_peer_is_named_with_its_host_and_nothing_is_left(tmp_path):
    with bridged_namespaces(2, "ssh") as net:
        cmd, env, remote_dir = _setup(tmp_path, net, fail=FAIL_PEER_2)
        cmd += ["--rounds", "3", "--round-deadline", "0.5", "--startup-timeout", "5"]
        try:
            with started(cmd, tmp_path / "launch.log", env=env, cwd=ROOT) as launcher:
                code = launcher.wait(timeout=150)
            log = (tmp_path / "launch.log").read_text()
            assert code == 1, log
            assert processes_mentioning(str(remote_dir)) == []
        finally:
            _kill_mentioning(str(tmp_path))
    assert (f"peer 2 on host {net.addresses[1]} failed (exit code 3): "
            "remote-gossip: peer 2 will not start") in log
    assert "average-model test accuracy" in log  # the others finished
    out = tmp_path / "out"
    assert [i for i in range(4) if (out / "params" / f"peer-{i:04d}.npz").exists()] == [0, 1, 3]


@needs_netns
def test_sigterm_stops_the_remote_peers_through_their_stdin(tmp_path):
    with bridged_namespaces(2, "ssh") as net:
        cmd, env, remote_dir = _setup(tmp_path, net, slots=1)
        cmd += ["--rounds", "100000"]
        try:
            with started(cmd, tmp_path / "launch.log", env=env, cwd=ROOT) as launcher:
                wait_for(lambda: all(records(tmp_path / "out" / f"peer-{i:04d}.jsonl")
                                     for i in range(2)), 120, "every peer's first round")
                launcher.send_signal(signal.SIGTERM)
                assert launcher.wait(timeout=60) == 143
            # the stand-in ssh never signals the remote peers: only their stdin closed
            wait_for(lambda: processes_mentioning(str(remote_dir)) == [], 10,
                     "the remote peers to exit")
        finally:
            _kill_mentioning(str(tmp_path))
    log = (tmp_path / "launch.log").read_text()
    assert "stopped; all 2 peers terminated" in log
    for i in range(2):
        assert "Traceback" not in (tmp_path / "out" / "logs" / f"peer-{i:04d}.log").read_text()
