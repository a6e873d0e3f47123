"""Imports flow one way (docs/architecture.md): CLI / assembly -> drivers -> core, the zoo
beside the core; ``import gossip`` is light; no generic top-level name is installed."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ["round", "training", "attacks", "rules", "compress", "topology", "wire", "data", "evaluate",
        "optim", "config", "pytree", "summary_table", "errors"]
DRIVERS = ["sim", "peer"]


def _modules(names: list[str]) -> list[Path]:
    files = []
    for name in names:
        path = ROOT / "gossip" / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return files


def test_import_contracts_hold():
    # The layers and the "no model library below the assembly" contracts in pyproject.toml.
    lint_imports = Path(sys.executable).with_name("lint-imports")  # installed with [test]
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_and_drivers_never_import_the_zoo():
    # gossip.models lives in the folder models/, where lint-imports does not look for it.
    for path in _modules(CORE + DRIVERS):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(n == "gossip.models" or n.startswith("gossip.models.")
                           for n in names), f"{path.relative_to(ROOT)} imports the model zoo"


def test_import_gossip_loads_neither_flax_nor_a_driver():
    code = ("import sys, gossip, gossip.round, gossip.rules, gossip.topology, gossip.wire; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flax', 'models', "
            "'sims') or m.startswith(('gossip.sim', 'gossip.peer', 'gossip.models'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_generic_top_level_name_is_installed():
    # Run from / so the repository's own folders are not on sys.path.
    for name in ("models", "sims"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                                text=True, timeout=60, cwd="/")
        assert result.returncode != 0 and "No module named" in result.stderr, name
    result = subprocess.run([sys.executable, "-c", "import gossip.models as m; print(m.MODELS)"],
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0 and "mlp" in result.stdout, result.stderr


def _loaded(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of ``prefixes`` that ``code`` leaves loaded."""
    probe = (f"{code}; import sys; print(sorted(m for m in sys.modules "
             f"if m.split('.')[0] in {prefixes!r} or m.startswith({prefixes!r})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)  # a printed list of module names


def test_a_peer_imports_only_what_its_model_needs():
    # the CLI (and `gossip keys`) start without JAX; the zoo imports a model when it is built,
    # so a run of a model without flax (linear) never loads flax, nor any benchmark code
    assert _loaded("import gossip.cli, gossip.wire", ("jax", "flax", "gossip.wire.codec")) == []
    build = ("from gossip.config import Config; from gossip.launch.peer_task import "
             "build_peer_task; build_peer_task(Config(peers=4, model='linear', "
             "dataset='teacher_linear'), 0)")
    assert _loaded(build, ("flax", "orbax", "tensorstore", "matplotlib", "gossip.bench",
                           "gossip.models.mlp", "gossip.models.cnn")) == []
    assert "flax" in _loaded("from gossip.models import make_model; make_model('mlp', "
                             "{'task': 'classification', 'num_classes': 3, "
                             "'input_shape': (4,)})", ("flax",))
