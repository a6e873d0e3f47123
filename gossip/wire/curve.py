"""CurveZMQ keys of a run: one CURVE key pair per peer, written and read as ZeroMQ certificates.

A key directory holds, for peer ``i``, ``peer-XXXX.key`` (its public key) and
``peer-XXXX.key_secret`` (its public and secret key, mode 0600), as written by
``zmq.auth.create_certificates``. A peer needs its own secret file and the public file of
every peer of the run; :func:`load_keys` reads exactly those into a :class:`CurveKeys`, which
:class:`gossip.wire.Transport` uses to encrypt every connection and to accept only the run's
peers (see ``docs/protocol.md``).

A secret file that its group or others may read (any of the mode bits 0o077) is refused, as
ssh refuses such a private key: a key others can read no longer authenticates its peer.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import zmq
import zmq.auth


class KeyFileError(OSError):
    """A key directory or key file that cannot be used; the message is one line naming it."""


@dataclasses.dataclass(frozen=True)
class CurveKeys:
    """The CURVE keys one peer needs (Z85-encoded, 40 bytes each).

    Attributes:
        public: this peer's public key.
        secret: this peer's secret key (left out of ``repr``).
        peers: the public key of every peer of the run; entry ``i`` is peer ``i``'s.
    """

    public: bytes
    secret: bytes = dataclasses.field(repr=False)
    peers: tuple[bytes, ...]


def key_name(peer: int) -> str:
    """The file name stem of peer ``peer``'s keys: ``peer-XXXX``."""
    return f"peer-{peer:04d}"


def public_path(keys_dir: Path, peer: int) -> Path:
    """``keys_dir/peer-XXXX.key``: the public key of ``peer``."""
    return Path(keys_dir) / f"{key_name(peer)}.key"


def secret_path(keys_dir: Path, peer: int) -> Path:
    """``keys_dir/peer-XXXX.key_secret``: the key pair of ``peer`` (mode 0600)."""
    return Path(keys_dir) / f"{key_name(peer)}.key_secret"


def check_curve() -> None:
    """Raises KeyFileError when this libzmq was built without CURVE (libsodium)."""
    if not zmq.has("curve"):
        raise KeyFileError(f"this libzmq ({zmq.zmq_version()}) has no CURVE support "
                           "(zmq.has('curve') is False); install a pyzmq wheel, which "
                           "bundles a libzmq with CURVE, or build libzmq with libsodium")


def write_keys(keys_dir: Path, n_peers: int, force: bool = False) -> list[Path]:
    """Writes a fresh CURVE key pair for each of ``n_peers`` peers into ``keys_dir``.

    The secret file is created with mode 0600 before any key is written into it.

    Args:
        keys_dir: the directory (created, mode 0700, when missing).
        n_peers: number of peers.
        force: overwrite keys that exist; without it, an existing key file is an error and
            nothing is written.

    Returns:
        The files written, public then secret for each peer.

    Raises:
        KeyFileError: no CURVE support, ``n_peers < 1``, or a key file exists (without
            ``force``).
    """
    check_curve()
    if n_peers < 1:
        raise KeyFileError(f"--peers must be >= 1, got {n_peers}")
    keys_dir = Path(keys_dir)
    paths = [p for i in range(n_peers) for p in (public_path(keys_dir, i),
                                                 secret_path(keys_dir, i))]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise KeyFileError(f"{existing[0]} exists{more}; pass --force to overwrite")
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for i in range(n_peers):
        secret = secret_path(keys_dir, i)
        secret.unlink(missing_ok=True)
        os.close(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        zmq.auth.create_certificates(keys_dir, key_name(i))  # keeps the secret file's mode
        os.chmod(secret, 0o600)
        os.chmod(public_path(keys_dir, i), 0o644)
    return paths


def _read(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise KeyFileError(f"missing key file {path} (make keys with `gossip keys`)")
    if secret:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(f"secret key {path} is accessible by others (mode "
                               f"{mode:04o}); run `chmod 600 {path}`")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror or e}") from None
    except ValueError:
        raise KeyFileError(f"key file {path} is not a ZeroMQ certificate (make keys with "
                           "`gossip keys`)") from None
    if public is None or len(public) != 40 or (secret and (secret_key is None
                                                            or len(secret_key) != 40)):
        what = "a public and a secret key" if secret else "a public key"
        raise KeyFileError(f"key file {path} does not hold {what} (Z85, 40 characters)")
    return public, secret_key


def load_keys(keys_dir: Path, peer_id: int, n_peers: int) -> CurveKeys:
    """Reads peer ``peer_id``'s key pair and the public keys of all ``n_peers`` peers.

    Raises:
        KeyFileError: no CURVE support, a missing or unreadable file (named), a secret file
            accessible by others, or a public file that does not match the secret one.
    """
    check_curve()
    keys_dir = Path(keys_dir)
    if not keys_dir.is_dir():
        raise KeyFileError(f"key directory {keys_dir} does not exist")
    public, secret = _read(secret_path(keys_dir, peer_id), secret=True)
    peers = tuple(_read(public_path(keys_dir, j), secret=False)[0] for j in range(n_peers))
    if peers[peer_id] != public:
        raise KeyFileError(f"{public_path(keys_dir, peer_id)} does not match "
                           f"{secret_path(keys_dir, peer_id)}")
    assert secret is not None
    return CurveKeys(public=public, secret=secret, peers=peers)
