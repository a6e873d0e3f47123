"""The wire protocol: codec (header + raw leaf frames), ZeroMQ transport, CURVE keys.

The names below are imported on first use (PEP 562), so ``gossip.wire.curve`` (the
``gossip keys`` command) does not pull JAX in through the codec.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CODECS": "codec",
    "DTYPES": "codec",
    "KINDS": "codec",
    "PAYLOAD_KINDS": "codec",
    "PROTOCOL_VERSION": "codec",
    "Header": "codec",
    "LeafSpec": "codec",
    "Message": "codec",
    "Template": "codec",
    "WireError": "codec",
    "decode": "codec",
    "encode": "codec",
    "make_template": "codec",
    "read_header": "codec",
    "CurveKeys": "curve",
    "KeyFileError": "curve",
    "load_keys": "curve",
    "write_keys": "curve",
    "Transport": "transport",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gossip.wire' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gossip.wire.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
