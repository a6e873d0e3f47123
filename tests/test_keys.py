"""CURVE keys: ``gossip keys``, loading and its errors, the launcher's key archive, and two
real peers that talk over CurveZMQ."""

import re
import shlex
import stat
import subprocess
import tarfile
from io import BytesIO

import pytest
from peer_utils import FAST, gossip_cmd, records, started

from gossip.cli import main
from gossip.errors import ConfigError
from gossip.launch.hostfile import Slot
from gossip.launch.keys import key_archive, launch_keys, unpack_keys_command
from gossip.launch.local import free_ports, peer_command
from gossip.launch.ssh import peer_remote_command
from gossip.wire import CurveKeys, KeyFileError, load_keys, write_keys


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_gossip_keys_writes_one_pair_per_peer_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "k"
    assert main(["keys", "--peers", "3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        f"peer-{i:04d}.{ext}" for i in range(3) for ext in ("key", "key_secret")]
    assert mode(out) == 0o700
    for i in range(3):
        assert mode(out / f"peer-{i:04d}.key_secret") == 0o600
        assert mode(out / f"peer-{i:04d}.key") == 0o644
    secret = (out / "peer-0000.key_secret").read_bytes()
    assert main(["keys", "--peers", "3", "--out", str(out)]) == 2
    assert (f"gossip: error: {out}/peer-0000.key exists (and 5 more); pass --force "
            "to overwrite") in capsys.readouterr().err
    assert (out / "peer-0000.key_secret").read_bytes() == secret
    assert main(["keys", "--peers", "3", "--out", str(out), "--force"]) == 0
    assert (out / "peer-0000.key_secret").read_bytes() != secret


def test_gossip_keys_refuses_a_git_working_tree_unless_forced(tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    out = repo / "deep" / "keys"
    assert main(["keys", "--peers", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"inside the git working tree {repo}" in err
    assert "--force" in err and not out.exists()
    assert main(["keys", "--peers", "2", "--out", str(out), "--force"]) == 0
    assert mode(out / "peer-0001.key_secret") == 0o600 and mode(out) == 0o700
    capsys.readouterr()
    (tmp_path / "file").write_text("")
    for argv, message in ((["--peers", "1", "--out", str(tmp_path / "k")],
                           "--peers must be >= 2, got 1"),
                          (["--peers", "2", "--out", str(tmp_path / "file")],
                           "is a file")):
        assert main(["keys", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_loaded_keys_match_and_hide_the_secret(tmp_path):
    write_keys(tmp_path, 3)
    keys = [load_keys(tmp_path, i, 3) for i in range(3)]
    assert all(k.peers == keys[0].peers and k.peers[i] == k.public
               for i, k in enumerate(keys))
    assert len({k.public for k in keys}) == 3 and all(len(k.secret) == 40 for k in keys)
    assert keys[0].secret.decode() not in repr(keys[0])
    assert isinstance(keys[0], CurveKeys)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(KeyFileError, match=f"key directory {tmp_path}/no does not exist"):
        load_keys(tmp_path / "no", 0, 2)
    write_keys(tmp_path, 2)
    with pytest.raises(KeyFileError, match=re.escape(
            f"missing key file {tmp_path}/peer-0002.key (make keys with `gossip keys`)")):
        load_keys(tmp_path, 0, 3)
    with pytest.raises(KeyFileError, match=f"missing key file {tmp_path}/peer-0002.key_secret"):
        load_keys(tmp_path, 2, 3)
    (tmp_path / "peer-0001.key_secret").chmod(0o640)
    with pytest.raises(KeyFileError, match=re.escape(
            f"secret key {tmp_path}/peer-0001.key_secret is accessible by others (mode 0640); "
            f"run `chmod 600 {tmp_path}/peer-0001.key_secret`")):
        load_keys(tmp_path, 1, 2)
    (tmp_path / "peer-0001.key").write_bytes((tmp_path / "peer-0000.key").read_bytes())
    (tmp_path / "peer-0001.key_secret").chmod(0o600)
    with pytest.raises(KeyFileError, match=f"{tmp_path}/peer-0001.key does not match"):
        load_keys(tmp_path, 1, 2)
    (tmp_path / "peer-0000.key").write_text("not a certificate\n")
    with pytest.raises(KeyFileError, match=f"key file {tmp_path}/peer-0000.key is not a ZeroMQ"):
        load_keys(tmp_path, 1, 2)


def test_launch_keys_auto_and_given(tmp_path):
    auto = launch_keys("auto", tmp_path / "out", 2)
    assert auto == (tmp_path / "out" / "keys").resolve()
    first = (auto / "peer-0001.key").read_bytes()
    assert launch_keys("auto", tmp_path / "out", 2) == auto  # fresh keys every run
    assert (auto / "peer-0001.key").read_bytes() != first
    assert launch_keys(str(auto), tmp_path / "other", 2) == auto
    with pytest.raises(ConfigError, match=f"--keys {auto}: missing key file .*peer-0002.key"):
        launch_keys(str(auto), tmp_path / "other", 3)


def test_each_host_gets_every_public_key_and_only_its_own_secret_keys(tmp_path):
    keys = tmp_path / "keys"
    write_keys(keys, 4)
    archive = key_archive(keys, 4, [3, 2])
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        members = {m.name: (m.mode, m.uid) for m in tar}
    assert members == {**{f"peer-{i:04d}.key": (0o644, 0) for i in range(4)},
                       "peer-0002.key_secret": (0o600, 0), "peer-0003.key_secret": (0o600, 0)}
    remote = tmp_path / "remote dir"
    (remote / "keys").mkdir(parents=True)
    (remote / "keys" / "peer-0002.key_secret").write_text("old key of an earlier run")
    command = unpack_keys_command(str(remote))
    assert command == (f"mkdir -p '{remote}/keys' && chmod 700 '{remote}/keys' && "
                       f"tar -xof - -C '{remote}/keys'")
    subprocess.run(["sh", "-c", command], input=archive, check=True)
    got = remote / "keys"
    assert mode(got) == 0o700
    assert sorted(p.name for p in got.iterdir()) == sorted(members)
    assert mode(got / "peer-0002.key_secret") == 0o600
    for i in (2, 3):  # what the peers of that host will load
        assert load_keys(got, i, 4) == load_keys(keys, i, 4)
    slot = Slot(2, "b", 29500, "tcp://b:29500")
    assert shlex.split(peer_remote_command(slot, "/r", {}, "gossip", "info", keys=True)
                       )[-2:] == ["--keys", "/r/keys"]
    assert "--keys" not in peer_remote_command(slot, "/r", {}, "gossip", "info")
    assert peer_command(1, tmp_path, "info", keys)[-2:] == ["--keys", str(keys)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_peers_talk_over_curve(tmp_path, mode):
    write_keys(tmp_path / "keys", 2)
    peers = ",".join(f"tcp://127.0.0.1:{p}" for p in free_ports(2))
    cmd = gossip_cmd("peer", "--peers", peers, "--keys", str(tmp_path / "keys"), "--out",
                     str(tmp_path), "--rounds", "3", "--checkpoint-every", "0", *FAST,
                     *(["--rule", "push_sum", "--mode", "async"] if mode == "async" else []))
    with started([*cmd, "--id", "0"], tmp_path / "0.log") as p0, \
         started([*cmd, "--id", "1"], tmp_path / "1.log") as p1:
        assert p0.wait(timeout=120) == 0, (tmp_path / "0.log").read_text()
        assert p1.wait(timeout=120) == 0, (tmp_path / "1.log").read_text()
    runs = [records(tmp_path / f"peer-{i:04d}.jsonl") for i in (0, 1)]
    for i, rec in enumerate(runs):
        last = rec[-1]
        if mode == "sync":
            assert (last["peer"], last["round"], last["messages_missing"]) == (i, 3, 0)
            assert last["messages_received"] == 3
        else:  # every last message taken in: the mass is whole
            assert last["final"] and last["final_missing"] == last["final_unsent"] == 0
            assert sum(r["messages_mixed"] for r in rec) + last["messages_absorbed"] >= 1
    if mode == "async":
        assert sum(rec[-1]["mass"] for rec in runs) == pytest.approx(2.0, abs=1e-5)


def test_a_peer_with_a_missing_key_stops_with_one_line(tmp_path):
    write_keys(tmp_path / "keys", 2)
    (tmp_path / "keys" / "peer-0001.key").unlink()
    peers = ",".join(f"tcp://127.0.0.1:{p}" for p in free_ports(2))
    run = subprocess.run(gossip_cmd("peer", "--id", "0", "--peers", peers, "--keys",
                                    str(tmp_path / "keys"), "--out", str(tmp_path), *FAST),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert (f"gossip peer 0: ERROR missing key file {tmp_path}/keys/peer-0001.key "
            "(make keys with `gossip keys`)") in run.stderr
