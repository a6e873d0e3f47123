"""The namespace test network: hosts reach each other, cut/restore work, nothing is left."""

import subprocess
import sys

import pytest
from netns import bridged_namespaces, netns_available

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns`")

PORT = 7355
SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"pong " + c.recv(64))
    c.close()
"""
CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0) as c:
        c.settimeout(1.0)
        c.sendall(b"ping")
        sys.exit(0 if c.recv(64) == b"pong ping" else 2)
except OSError:
    sys.exit(1)
"""


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _root_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.splitlines())


def test_two_hosts_talk_cut_breaks_and_restore_heals():
    links_before = _root_links()
    with bridged_namespaces(2, "nt") as net:
        assert len(net.names) == 2 and all(len(name) <= 15 for name in net.names)
        assert all(name in _namespaces() for name in (*net.names, net.bridge))
        assert net.addresses[0].rsplit(".", 1)[1] == "1"
        assert net.addresses[1].rsplit(".", 1)[1] == "2"
        server = subprocess.Popen([*net.exec_prefix(0), sys.executable, "-c", SERVER,
                                   str(PORT)], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"

            def client() -> int:
                return subprocess.run([*net.exec_prefix(1), sys.executable, "-c", CLIENT,
                                       net.addresses[0], str(PORT)], timeout=30).returncode

            assert client() == 0
            net.cut(1)
            assert client() == 1
            net.restore(1)
            assert client() == 0
            net.cut(0)  # the other side's cut breaks it too
            assert client() == 1
            net.restore(0)
            assert client() == 0
        finally:
            server.kill()
            server.wait()
        names = [*net.names, net.bridge]
    assert not any(name in _namespaces() for name in names)
    assert _root_links() == links_before


def test_namespaces_are_removed_on_error_with_their_processes():
    with pytest.raises(RuntimeError), bridged_namespaces(3, "nt") as net:
        sleeper = subprocess.Popen([*net.exec_prefix(2), "sleep", "600"])
        names = [*net.names, net.bridge]
        raise RuntimeError("boom")
    assert sleeper.wait(timeout=10) != 0  # killed when its namespace was removed
    assert not any(name in _namespaces() for name in names)


def test_leftovers_of_a_crashed_run_are_removed_first():
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"gnt-{dead.pid:x}-0"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        with bridged_namespaces(1, "nt"):
            assert stale not in _namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)
