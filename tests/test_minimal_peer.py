"""A peer written only from docs/protocol.md (tests/minimal_peer.py, no ``gossip`` import)
completes a run with two real peers, its leaves read from the documented table."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from hostile import make_peers, max_abs, peers_config, running

from gossip.launch.local import free_ports

ROOT = Path(__file__).resolve().parent
ROUNDS = 12


def documented_leaves(model: str) -> list[str]:
    """``path:dtype:d0,d1`` of each leaf in docs/protocol.md's table of ``model``."""
    text = (ROOT.parent / "docs" / "protocol.md").read_text()
    table = re.search(rf"\*\*`{model}`\*\*.*?\n\n(.*?)\n\n", text, re.S).group(1)
    rows = re.findall(r"^\| `([^`]+)` \| (\w+) \| `\[([\d, ]*)\]`", table, re.M)
    return [f"{path}:{dtype}:{shape.replace(' ', '')}" for path, dtype, shape in rows]


def test_a_peer_written_from_the_docs_completes_a_run_with_real_peers(tmp_path):
    leaves = documented_leaves("linear")
    assert leaves == ["w:float32:10"]
    config = peers_config(3, rounds=ROUNDS, dataset="least_squares", model="linear",
                          dataset_options={"peers": 3}, model_options={}, batch_size=0,
                          round_deadline=30.0,
                          startup_timeout=30.0)
    addresses = [f"tcp://127.0.0.1:{p}" for p in free_ports(3)]
    peers = make_peers(config, [0, 1], tmp_path, addresses)
    out = tmp_path / "minimal.json"
    cmd = [sys.executable, str(ROOT / "minimal_peer.py"), "--id", "2", "--addresses",
           ",".join(addresses), "--rounds", str(ROUNDS), "--out", str(out),
           *(a for leaf in leaves for a in ("--leaf", leaf))]
    with (tmp_path / "minimal.log").open("w") as log:
        minimal = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        with running(peers) as results:
            pass
        assert minimal.wait(timeout=120) == 0, (tmp_path / "minimal.log").read_text()
    finally:
        minimal.kill()
        minimal.wait()
    for peer in peers:
        last = results[peer.i]
        assert last["round"] == ROUNDS and last["params_finite"]
        # every round, peer 2's message arrived and passed every check
        assert last["messages_rejected"] == last["messages_missing"] == 0
        assert last["messages_received"] == 2 * ROUNDS
        assert np.isfinite(max_abs(peer.params))
    result = json.loads(out.read_text())
    w = np.asarray(result["params"][0])
    assert result["rounds"] == ROUNDS and w.shape == (10,) and np.isfinite(w).all()
    assert not np.allclose(w, 0.3)  # it mixed the real peers' parameters in
