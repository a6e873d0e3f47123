"""The peers' persistent compilation cache: where it goes, and that JAX writes to it."""

import subprocess
import sys
from pathlib import Path

import pytest

from gossip.config import resolve
from gossip.errors import ConfigError
from gossip.launch.compile_cache import cache_dir


def test_cache_dir_auto_off_and_a_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert cache_dir("auto", tmp_path) == tmp_path / "compile-cache"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax-own"))
    assert cache_dir("auto", tmp_path) == tmp_path / "jax-own"  # the user's JAX setting wins
    assert cache_dir("off", tmp_path) is None
    assert cache_dir(str(tmp_path / "shared"), Path("elsewhere")) == tmp_path / "shared"


def test_config_key_defaults_to_auto_and_must_be_text():
    assert resolve({}, {}).compile_cache == "auto"
    with pytest.raises(ConfigError, match="compile_cache"):
        resolve({}, {"compile_cache": 3})


def test_enabled_cache_holds_what_a_jitted_function_compiled(tmp_path):
    # in a child process: the cache is a process-wide JAX setting
    code = ("import sys; from pathlib import Path; import jax, jax.numpy as jnp; "
            "from gossip.launch.compile_cache import enable_compile_cache; "
            "enable_compile_cache(Path(sys.argv[1])); "
            "jax.jit(lambda x: jnp.sin(x) * 3)(jnp.ones(5)).block_until_ready()")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], check=True,
                   timeout=120)
    assert any((tmp_path / "cache").iterdir())
