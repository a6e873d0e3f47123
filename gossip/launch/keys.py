"""``gossip keys``: CURVE key pairs for the peers of a run; ``--keys`` of ``gossip launch``.

``gossip keys --peers N --out DIR`` writes ``DIR/peer-XXXX.key`` (public) and
``DIR/peer-XXXX.key_secret`` (mode 0600) for every peer (:func:`gossip.wire.write_keys`).

``gossip launch --keys DIR`` checks that DIR holds every peer's key pair and gives the peers
``--keys``; ``--keys auto`` first writes fresh keys into ``OUT/keys``. Over ssh, each host
gets, as one tar stream on the stdin of the ssh that also unpacks it (:func:`key_archive`,
:func:`unpack_keys_command`), the public keys of all peers and the secret keys of its own
peers only, in ``DIR/keys`` (mode 0700).
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gossip.config import MIN_PEERS
from gossip.errors import ConfigError, check_int
from gossip.wire.curve import (
    KeyFileError,
    load_keys,
    public_path,
    secret_path,
    write_keys,
)

AUTO = "auto"

REMOTE_KEYS = "keys"  # the keys' directory inside the remote run directory


def launch_keys(spec: str, out: Path, n_peers: int) -> Path:
    """The key directory of ``gossip launch --keys SPEC`` (absolute).

    Args:
        spec: a directory holding every peer's key pair, or ``"auto"``: write fresh keys
            into ``out/keys`` (replacing the keys of an earlier run there).
        out: the run's output directory.
        n_peers: number of peers.

    Raises:
        ConfigError: a key is missing or unusable (the message names the file).
    """
    try:
        if spec == AUTO:
            keys_dir = out / "keys"
            for old in keys_dir.glob("peer-*.key*"):
                old.unlink()
            write_keys(keys_dir, n_peers, force=True)
        else:
            keys_dir = Path(spec)
            for i in range(n_peers):
                load_keys(keys_dir, i, n_peers)
    except KeyFileError as e:
        raise ConfigError(f"--keys {spec}: {e}") from None
    return keys_dir.resolve()


def key_archive(keys_dir: Path, n_peers: int, own: Iterable[int]) -> bytes:
    """A tar archive of every peer's public key and the secret keys of the peers ``own``.

    Members are plain files at the top level, owned by uid/gid 0 (extract with ``tar -o``);
    secret files have mode 0600, public ones 0644.
    """
    buf = io.BytesIO()
    now = int(time.time())
    files = [(public_path(keys_dir, i), 0o644) for i in range(n_peers)]
    files += [(secret_path(keys_dir, i), 0o600) for i in sorted(set(own))]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack_keys_command(remote_dir: str) -> str:
    """The remote command that extracts the tar archive on stdin into ``remote_dir/keys``
    (mode 0700), overwriting files of the same name.

    Nothing else there is removed: on a file system that several hosts share, every host
    writes into the same directory.
    """
    keys = shlex.quote(f"{remote_dir}/{REMOTE_KEYS}")
    return f"mkdir -p {keys} && chmod 700 {keys} && tar -xof - -C {keys}"


def git_worktree(path: Path) -> Path | None:
    """The root of the git working tree that holds ``path`` (which need not exist yet), or
    None. Found by looking for ``.git`` in ``path`` and every folder above it."""
    for folder in (path.resolve(), *path.resolve().parents):
        if (folder / ".git").exists():
            return folder
    return None


def run_keys_command(args: argparse.Namespace) -> int:
    """``gossip keys --peers N --out DIR [--force]``.

    Refuses a directory inside a git working tree (secret keys must not be committed)
    unless ``--force``; the secret files get mode 0600, the directory 0700 when created.
    """
    out = Path(args.out)
    check_int("--peers", args.peers, MIN_PEERS)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    tree = git_worktree(out)
    if tree is not None and not args.force:
        raise ConfigError(f"--out {out} is inside the git working tree {tree}, where secret "
                          "keys can end up in a commit; write them outside it (e.g. "
                          "~/.gossip/keys/RUN) or pass --force")
    try:
        write_keys(out, args.peers, force=args.force)
    except KeyFileError as e:
        raise ConfigError(str(e)) from None
    print(f"gossip keys: {args.peers} key pairs in {args.out} (peer-XXXX.key public, "
          "peer-XXXX.key_secret secret, mode 0600)", file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    """Registers ``keys`` on the ``gossip`` subcommand parsers."""
    keys = sub.add_parser(
        "keys", help="make CURVE key pairs for the peers of a run (encryption, authentication)",
        description="Write one CurveZMQ key pair per peer: DIR/peer-XXXX.key (public) and "
        "DIR/peer-XXXX.key_secret (secret, mode 0600; DIR mode 0700 when created). Give the "
        "directory to `gossip peer --keys DIR` or `gossip launch --keys DIR`. Keep DIR out "
        "of any git working tree, e.g. ~/.gossip/keys/RUN (docs/multihost.md).")
    keys.add_argument("--peers", type=int, required=True, metavar="N",
                      help=f"number of peers (>= {MIN_PEERS})")
    keys.add_argument("--out", required=True, metavar="DIR",
                      help="directory to write them to (outside any git working tree)")
    keys.add_argument("--force", action="store_true",
                      help="overwrite existing keys, and write inside a git working tree")
    keys.set_defaults(func=run_keys_command)
