"""Config resolution: file values, overrides, types, unknown keys, TOML round trip."""

import argparse
import tomllib

import pytest

from gossip.config import Config, add_config_flags, config_from_args, load_toml, resolve
from gossip.errors import ConfigError


def _args(argv):
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return parser.parse_args(argv)


def test_defaults_and_overrides_win_over_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('peers = 8\ntopology = "torus"\nlr = 1\n[model_options]\nhidden = [32]\n')
    cfg = config_from_args(_args(["--config", str(path), "--peers", "4", "--save-params"]))
    assert cfg.peers == 4 and cfg.topology == "torus" and cfg.save_params
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.model_options == {"hidden": [32]}
    assert cfg.rounds == Config().rounds


def test_set_takes_toml_values():
    cfg = config_from_args(_args(["--set", "model_options={hidden=[256, 64]}",
                                  "--set", "same_init=false", "--set", "dataset=mnist1d"]))
    assert cfg.model_options == {"hidden": [256, 64]}
    assert cfg.same_init is False and cfg.dataset == "mnist1d"


def test_round_trip_through_toml():
    cfg = Config(peers=3, topology_options={"p": 0.5}, save_params=True)
    assert resolve(tomllib.loads(cfg.to_toml()), {}) == cfg


@pytest.mark.parametrize("values, match", [
    ({"peer": 3}, "unknown config key 'peer'; valid keys: peers"),
    ({"peers": "4"}, "config key 'peers' must be int, got str '4'"),
    ({"peers": True}, "config key 'peers' must be int"),
    ({"save_params": 1}, "config key 'save_params' must be bool"),
    ({"model_options": 3}, "config key 'model_options' must be dict"),
    ({"peers": 0}, "peers must be >= 2, got 0"),
    ({"alpha": 0.0}, "alpha must be > 0, got 0.0"),
    ({"alpha": -1}, "alpha must be > 0, got -1.0"),
    ({"batch_size": -1}, r"batch_size must be >= 0 \(0: the whole shard every step\), got -1"),
])
def test_bad_values_name_the_key(values, match):
    with pytest.raises(ConfigError, match=match):
        resolve(values, {})


def test_batch_size_zero_means_the_whole_shard():
    assert resolve({"batch_size": 0}, {}).batch_size == 0
    assert config_from_args(_args(["--batch-size", "0"])).batch_size == 0
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    assert "0: the whole shard" in " ".join(parser.format_help().split())


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.toml"):
        load_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("peers = = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE"):
        config_from_args(_args(["--set", "peers"]))
