"""The ssh command lines of ``gossip launch --hostfile`` and the remote shell commands they run.

Pure functions of the options, so each command can be checked as a string. Every value that
reaches a remote shell is quoted for it (``shlex.quote``), apart from a leading ``~/`` of
``--remote-gossip``, which the remote shell expands. The commands need only a POSIX ``sh``,
``mkdir``, ``cat``, ``tar``, ``ps``, ``kill`` and ``rm`` on the hosts.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping, Sequence

from gossip.errors import ConfigError
from gossip.launch.addresses import PORT_BASE
from gossip.launch.hostfile import Slot
from gossip.launch.keys import REMOTE_KEYS

FORWARDED_ENV = ("JAX_PLATFORMS", "JAX_ENABLE_X64", "XLA_FLAGS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
"""Variables passed on to the remote peers when set here (and every ``GOSSIP_*`` one)."""

STOP_TICKS = 50  # the clean-up waits up to this many tenths of a second for peers to exit
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class SshOptions:
    """How to reach the hosts and start gossip there (the ``--hostfile`` flags)."""

    ssh: str = "ssh"
    ssh_options: tuple[str, ...] = ()
    remote_gossip: str = "gossip"
    remote_dir: str | None = None
    port_base: int = PORT_BASE
    env: tuple[str, ...] = ()


def forwarded_env(environ: Mapping[str, str], extra: Sequence[str] = ()) -> dict[str, str]:
    """The variables the remote peers get: ``GOSSIP_*`` and :data:`FORWARDED_ENV` when set,
    plus ``extra`` (``NAME``, taken from ``environ``, or ``NAME=VALUE``); sorted by name.

    Raises:
        ConfigError: a bad name, or ``NAME`` not set in ``environ``.
    """
    env = {k: v for k, v in environ.items() if k.startswith("GOSSIP_") or k in FORWARDED_ENV}
    for spec in extra:
        name, given, value = spec.partition("=")
        if not _ENV_NAME.match(name):
            raise ConfigError(f"--env {spec}: {name!r} is not a variable name")
        if not given:
            if name not in environ:
                raise ConfigError(f"--env {name}: {name} is not set in this environment")
            value = environ[name]
        env[name] = value
    return dict(sorted(env.items()))


def ssh_command(opts: SshOptions, host: str, remote: str) -> list[str]:
    """``ssh -o BatchMode=yes [-o OPT ...] HOST REMOTE`` (``--ssh`` is split like a shell)."""
    extra = [arg for opt in opts.ssh_options for arg in ("-o", opt)]
    return [*shlex.split(opts.ssh), "-o", "BatchMode=yes", *extra, host, remote]


def _word(word: str) -> str:
    """Quotes one word for the remote shell, leaving a leading ``~/`` to be expanded."""
    if word.startswith("~/"):
        return "~/" + shlex.quote(word[2:])
    return shlex.quote(word)


def pid_file(peer: int) -> str:
    """The file in the remote run directory that holds the pid of ``peer``'s process."""
    return f"peer-{peer:04d}.pid"


def peer_remote_command(slot: Slot, remote_dir: str, env: Mapping[str, str],
                        remote_gossip: str, log_level: str, keys: bool = False,
                        resume: bool = False) -> str:
    """The remote shell command that runs one peer (every value quoted).

    The shell writes its pid (which ``exec`` hands to the peer) to :func:`pid_file`, for
    :func:`cleanup_command`. With ``keys`` the peer gets ``--keys remote_dir/keys``; with
    ``resume``, ``--resume`` (a restart).
    """
    args = ["peer", "--id", str(slot.peer), "--peers", f"{remote_dir}/peers.txt",
            "--config", f"{remote_dir}/config.toml", "--log-level", log_level,
            "--stream-metrics", "--watch-stdin"]
    if keys:
        args += ["--keys", f"{remote_dir}/{REMOTE_KEYS}"]
    if resume:
        args.append("--resume")
    words = ["exec", "env", *(shlex.quote(f"{k}={v}") for k, v in env.items()),
             *(_word(w) for w in shlex.split(remote_gossip)), *map(shlex.quote, args)]
    return (f"cd {shlex.quote(remote_dir)} && echo $$ > {pid_file(slot.peer)} && "
            f"{' '.join(words)}")


def write_file_command(remote_dir: str, name: str) -> str:
    """The remote command that stores its stdin as ``remote_dir/name``."""
    return f"mkdir -p {shlex.quote(remote_dir)} && cat > {shlex.quote(f'{remote_dir}/{name}')}"


def gather_command(remote_dir: str, names: Sequence[str]) -> str:
    """The remote command that writes a tar archive of ``names`` (in ``remote_dir``)."""
    return f"cd {shlex.quote(remote_dir)} && tar -cf - {' '.join(map(shlex.quote, names))}"


_CLEANUP = (
    'cd {dir} 2>/dev/null || exit 0; '
    'args() {{ ps -ww -o args= -p "$1" 2>/dev/null || ps -o args= -p "$1" 2>/dev/null; }}; '
    'ours() {{ case $(args "$1") in *{marker}*) return 0;; esac; return 1; }}; '
    'live() {{ for f in peer-*.pid; do [ -f "$f" ] && ours "$(cat "$f")" && return 0; done; '
    'return 1; }}; '
    'send() {{ for f in peer-*.pid; do [ -f "$f" ] && p=$(cat "$f") && ours "$p" && '
    'kill -"$1" "$p" 2>/dev/null; done; return 0; }}; '
    'if live; then send TERM; i=0; while live && [ "$i" -lt {ticks} ]; do sleep 0.1; '
    'i=$((i + 1)); done; send KILL; fi; '
    'rm -f peer-*.pid{remove}')


def cleanup_command(remote_dir: str, remove: bool) -> str:
    """The remote command that ends a run on a host.

    Every peer of the run still alive there (a pid of :func:`pid_file` whose process's
    command line, in full (``ps -ww``: ``ps`` cuts it to 80 characters in a pipe), names
    ``remote_dir/peers.txt``) gets SIGTERM, and SIGKILL if it has not
    exited after :data:`STOP_TICKS` tenths of a second; then the pid files go, and with
    ``remove`` the whole run directory. One line, run by ``sh`` (the user's login shell
    may be another).
    """
    quoted = shlex.quote(remote_dir)
    script = _CLEANUP.format(dir=quoted, marker=shlex.quote(f"{remote_dir}/peers.txt"),
                             ticks=STOP_TICKS,
                             remove=f"; cd / && rm -rf {quoted}" if remove else "")
    return f"sh -c {shlex.quote(script)}"
