"""The wire protocol: codec (header + raw leaf frames), ZeroMQ transport, CURVE keys."""

from gossip.wire.codec import (
    CODECS,
    DTYPES,
    KINDS,
    PAYLOAD_KINDS,
    PROTOCOL_VERSION,
    Header,
    LeafSpec,
    Message,
    Template,
    WireError,
    decode,
    encode,
    make_template,
    read_header,
)
from gossip.wire.curve import CurveKeys, KeyFileError, load_keys, write_keys
from gossip.wire.transport import Transport

__all__ = [
    "CODECS",
    "DTYPES",
    "KINDS",
    "PAYLOAD_KINDS",
    "PROTOCOL_VERSION",
    "CurveKeys",
    "Header",
    "KeyFileError",
    "LeafSpec",
    "Message",
    "Template",
    "Transport",
    "WireError",
    "decode",
    "encode",
    "load_keys",
    "make_template",
    "read_header",
    "write_keys",
]
