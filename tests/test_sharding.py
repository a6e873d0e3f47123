"""The peer axis sharded over two host devices gives the same run as one device."""

import json
import os
import subprocess
import sys

import jax
import numpy as np

from gossip.sim.sharding import peer_sharding

SCRIPT = """
import json, jax, numpy as np
from gossip.config import Config
from gossip.experiment import build_experiment
from gossip.simulate import simulate
cfg = Config(peers=8, topology="one_peer_exponential", rounds=6, eval_every=3,
             model_options={"hidden": [16]})
record, params = simulate(build_experiment(cfg), progress=False)
leaf = params["out"]["kernel"]
print(json.dumps({"devices": len(leaf.sharding.device_set), "acc": record["avg_model_acc"],
                  "leaf": np.asarray(leaf).ravel().tolist()}))
"""


def _run(devices: int) -> dict:
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_host_devices_match_one():
    one, two = _run(1), _run(2)
    assert one["devices"] == 1 and two["devices"] == 2
    np.testing.assert_allclose(two["leaf"], one["leaf"], rtol=1e-5, atol=1e-6)
    assert abs(two["acc"] - one["acc"]) < 1e-6


def test_no_sharding_on_one_device():
    assert peer_sharding(8, jax.devices()[:1]) is None
