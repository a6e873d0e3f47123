"""The wire protocol: codec (header + raw leaf frames) and ZeroMQ transport."""

from gossip.wire.codec import (
    CODECS,
    DTYPES,
    KINDS,
    PROTOCOL_VERSION,
    LeafSpec,
    Message,
    Template,
    WireError,
    decode,
    encode,
    make_template,
)
from gossip.wire.transport import Transport

__all__ = [
    "CODECS",
    "DTYPES",
    "KINDS",
    "PROTOCOL_VERSION",
    "LeafSpec",
    "Message",
    "Template",
    "Transport",
    "WireError",
    "decode",
    "encode",
    "make_template",
]
