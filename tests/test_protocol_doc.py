"""docs/protocol.md stays true: its table of the zoo's leaves and its worked example are what
the code makes. Regenerate both blocks with ``python tests/test_protocol_doc.py``."""

import math
import re
import sys
from pathlib import Path

import jax
import msgpack
import numpy as np

from gossip.config import resolve
from gossip.pytree import leaf_paths
from gossip.wire import decode, encode, make_template

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
# Each zoo model with the dataset it is documented on (default options of both).
ZOO = [("linear", "least_squares"), ("logistic", "digits"), ("mlp", "digits"),
       ("cnn1d", "mnist1d"), ("cnn2d", "digits"), ("transformer", "chars"),
       ("mf", "ratings_synthetic")]
EXAMPLE_W = np.array([0.5, -1.0, 2.0], np.float32)


def orientation(model: str, path: str, ndim: int) -> str:
    """How a leaf is used: enough to mix it meaningfully with the reference peers'."""
    name = path.rsplit("/", 1)[-1]
    if model == "linear":
        return "prediction `x.reshape(B, d) @ w`"
    if name == "kernel" and ndim == 2:
        return "(in, out): `y = x @ kernel + bias`"
    if name == "kernel" and ndim == 3:
        return "(width, in channels, out channels), 'SAME' padding"
    if name == "kernel" and ndim == 4:
        return "(height, width, in channels, out channels), 'SAME' padding"
    if name == "embedding":
        return "(ids, dim): row i is the vector of id i"
    if name == "pos_embed":
        return "(position, d_model), added to the token vectors"
    if name == "scale" or (name == "bias" and "/ln" in f"/{path}"):
        return "LayerNorm " + ("scale" if name == "scale" else "offset") + " (d_model,)"
    if name == "bias" and ndim == 0:
        return "global bias, added to every prediction"
    return "(out,): added after the product"


def zoo_leaves() -> str:
    """The generated markdown block: one table per zoo model."""
    from gossip.experiment import build_experiment

    parts = []
    for model, dataset in ZOO:
        options = {"peers": 2, "model": model, "dataset": dataset}
        if dataset == "least_squares":
            options["dataset_options"] = {"peers": 2}
        exp = build_experiment(resolve({}, options))
        params = jax.eval_shape(exp.model.init, jax.random.key(0), exp.dataset.x_train[:1])
        template = make_template(params)
        parts.append(f"**`{model}`** on `{dataset}` (structure hash `{template.struct_hash}`, "
                     f"{template.nbytes} payload bytes)\n\n| path | dtype | shape | use |\n"
                     "|---|---|---|---|")
        for path, leaf in zip(leaf_paths(params), jax.tree.leaves(params), strict=True):
            parts.append(f"| `{path}` | {np.dtype(leaf.dtype).name} | "
                         f"`{list(leaf.shape)}` | {orientation(model, path, len(leaf.shape))} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def hexdump(data: bytes) -> str:
    return "\n".join(data[i:i + 16].hex(" ") for i in range(0, len(data), 16))


def example_frames() -> dict[str, list]:
    template = make_template({"w": EXAMPLE_W})
    return {"hello": encode("hello", 1, 0, template),
            "gossip": encode("gossip", 1, 2, template, {"w": EXAMPLE_W})}


def worked_example() -> str:
    """The generated markdown block: the bytes of a hello and of a gossip message."""
    frames = example_frames()
    template = make_template({"w": EXAMPLE_W})
    header = msgpack.unpackb(frames["gossip"][0])
    return (
        "The `linear` model with `dataset_options={dim=3}` has one leaf, `w` float32 `[3]`. "
        f"Its structure text is `w|float32|3`, whose hash is `{template.struct_hash}`. Peer 1 "
        "says hello in round 0 with one frame of "
        f"{len(frames['hello'][0])} bytes, the msgpack map "
        f"`{msgpack.unpackb(frames['hello'][0])}`:\n\n```text\n{hexdump(frames['hello'][0])}\n```\n\n"
        f"In round 2, with `w = {EXAMPLE_W.tolist()}`, it sends a `gossip` message (rule "
        "`dpsgd`) of two frames. Frame 0, the header "
        f"`{header}` ({len(frames['gossip'][0])} bytes):\n\n"
        f"```text\n{hexdump(frames['gossip'][0])}\n```\n\n"
        "Frame 1, `w` as three little-endian float32 (12 bytes):\n\n"
        f"```text\n{hexdump(bytes(frames['gossip'][1]))}\n```\n\n"
        "(A msgpack library may pack the same map with the keys in another order or an "
        "integer in a wider form; receivers accept any valid encoding.)\n")


BLOCKS = {"zoo-leaves": zoo_leaves, "worked-example": worked_example}


def _match(text: str, name: str) -> re.Match:
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"docs/protocol.md has no {name} block"
    return match


def block(text: str, name: str) -> str:
    return _match(text, name).group(1)


def test_the_zoo_leaf_tables_are_the_code_s():
    assert block(DOC.read_text(), "zoo-leaves") == zoo_leaves(), \
        "docs/protocol.md is out of date: run python tests/test_protocol_doc.py"


def test_the_worked_example_is_what_encode_makes_and_decodes():
    assert block(DOC.read_text(), "worked-example") == worked_example(), \
        "docs/protocol.md is out of date: run python tests/test_protocol_doc.py"
    template = make_template({"w": EXAMPLE_W})
    frames = example_frames()
    msg = decode([bytes(f) for f in frames["gossip"]], template, n_peers=2)
    np.testing.assert_array_equal(msg.payload["w"], EXAMPLE_W)
    assert math.prod(template.leaves[0].shape) * 4 == len(bytes(frames["gossip"][1]))


def write() -> None:
    text = DOC.read_text()
    for name, make in BLOCKS.items():
        match = _match(text, name)
        text = text[:match.start(1)] + make() + text[match.end(1):]
    DOC.write_text(text)


if __name__ == "__main__":
    sys.exit(write())
