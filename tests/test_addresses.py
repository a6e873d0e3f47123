"""The peer list: a file or a comma-separated list of ZeroMQ addresses."""

import pytest

from gossip.errors import ConfigError
from gossip.launch.addresses import check_address, parse_peers


def test_comma_separated_list():
    assert parse_peers("tcp://10.0.0.1:7100,tcp://10.0.0.2:7100") == [
        "tcp://10.0.0.1:7100", "tcp://10.0.0.2:7100"]


def test_file_skips_blank_lines_and_comments(tmp_path):
    f = tmp_path / "peers.txt"
    f.write_text("# lab machines\ntcp://node-a:7100\n\ntcp://node-b.lan:7101\nipc:///tmp/p2\n")
    assert parse_peers(str(f)) == ["tcp://node-a:7100", "tcp://node-b.lan:7101", "ipc:///tmp/p2"]


def test_ipv6_literal():
    assert check_address("tcp://[::1]:7100", "x") == "tcp://[::1]:7100"


@pytest.mark.parametrize(("text", "error"), [
    ("tcp://a:1\nhttp://b:2\n", "line 2: 'http://b:2' is not an address"),
    ("tcp://a:1\ntcp://b:70000\n", "line 2: 'tcp://b:70000' is not an address"),
    ("tcp://a:1\ntcp://a:1\n", "peers 0 and 1 have the same address tcp://a:1"),
    ("tcp://a:1\n", "has 1 address(es); peers must be >= 2"),
])
def test_bad_files_name_the_line(tmp_path, text, error):
    f = tmp_path / "peers.txt"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        parse_peers(str(f))
    assert error in str(err.value)


def test_bad_list_entry_is_named():
    with pytest.raises(ConfigError, match="--peers entry 2: 'tcp://b' is not an address"):
        parse_peers("tcp://a:1,tcp://b")


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read the peer list /nonexistent/peers.txt"):
        parse_peers("/nonexistent/peers.txt")
