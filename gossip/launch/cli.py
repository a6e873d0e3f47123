"""``gossip peer`` (one real peer process) and ``gossip launch`` (many, here or over ssh)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gossip.config import add_config_flags, config_from_args
from gossip.launch import ssh as ssh_launch
from gossip.launch.addresses import PORT_BASE
from gossip.outputs import with_out

if TYPE_CHECKING:
    from gossip.rules import GossipRule

LOG_LEVELS = ("debug", "info", "warning", "error")


def _on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)  # unwinds through the peer's ``finally``: sockets closed


def _print_record(record: dict[str, Any]) -> None:
    """``--stream-metrics``: one round's metrics record as one JSON line on stdout."""
    print(json.dumps(record), flush=True)


def _stop_at_stdin_eof() -> None:
    """``--watch-stdin``: a daemon thread sends this process SIGTERM once stdin is closed."""

    def watch() -> None:
        try:
            while os.read(0, 1 << 16):
                pass
        except OSError:
            pass  # no usable stdin: same as closed
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-stdin", daemon=True).start()


def run_peer_command(args: argparse.Namespace) -> int:
    """``gossip peer``: builds this peer's task from the config and runs it."""
    from gossip.launch.addresses import check_address
    from gossip.launch.compile_cache import cache_dir, enable_compile_cache
    from gossip.launch.environment import peer_identity
    from gossip.launch.peer_task import build_peer_task, peer_options, peer_speed, run_digest
    from gossip.peer.asynchronous import AsyncPeer
    from gossip.peer.checkpoint import CheckpointError
    from gossip.peer.runtime import Peer
    from gossip.wire import KeyFileError, load_keys

    peer_id, addresses = peer_identity(args.id, args.peer_list, args.port_base)
    bind = check_address(args.bind, "--bind") if args.bind else None
    config = with_out(config_from_args(args, fixed={"peers": len(addresses)}), "peer")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=f"gossip peer {peer_id}: %(levelname)s %(message)s")
    try:  # before the data is loaded: a bad key directory fails at once
        keys = load_keys(Path(args.keys), peer_id, len(addresses)) if args.keys else None
    except KeyFileError as e:
        logging.getLogger("gossip.peer").error("%s", e)
        return 1
    enable_compile_cache(cache_dir(config.compile_cache, Path(config.out)))
    task = build_peer_task(config, peer_id)
    options = peer_options(config, addresses, bind=bind, resume=args.resume,
                           run_digest=run_digest(config), keys=keys,
                           speed=peer_speed(config, peer_id))
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.watch_stdin:
        _stop_at_stdin_eof()
    try:
        peer = (AsyncPeer if options.mode == "async" else Peer)(task, options)
        last = peer.run(on_round=_print_record if args.stream_metrics else None)
    except (OSError, CheckpointError) as e:
        logging.getLogger("gossip.peer").error("%s", e)
        return 1
    if "time" not in last:  # resumed from a checkpoint of the last round: nothing ran
        print(f"gossip peer {peer_id}: already at round {last['round']}, nothing to run")
        return 0
    metric = next((f"{k} {v:.4f}, " for k, v in last.items() if k.startswith("local_")
                   and k != "local_loss"), "")
    print(f"gossip peer {peer_id}: {last['round']} rounds in {last['time']:.1f} s, {metric}"
          f"{last['messages_received']} messages received, {last['messages_missing']} missing, "
          f"{last['messages_rejected']} rejected, {last['mixes_discarded']} mixes discarded")
    failure = run_failure(last, task.rule)
    if failure:
        logging.getLogger("gossip.peer").error("%s: the run failed", failure)
        print(f"gossip peer {peer_id}: FAILED: {failure}")
        return 3
    return 0


def run_failure(last: dict[str, Any], rule: GossipRule) -> str | None:
    """Why a finished run's state is broken, from its last metrics record; None if it is not.

    Non-finite parameters break any run. A rule that needs every message (``rule.static``:
    Choco's Σ_j w_ij x̂_j must match its neighbours' public copies) is out of sync for good
    once one message went missing or was rejected.
    """
    if not last.get("params_finite", True):
        return "the parameters are not finite at the end of the run (NaN or Inf)"
    if last.get("final_missing") or last.get("final_unsent"):
        return (f"async: {last.get('final_missing', 0)} in-neighbour(s) stopped without their "
                f"last message reaching this peer, and {last.get('final_unsent', 0)} "
                "out-neighbour(s) could not be sent this peer's last message: push-sum mass "
                "was lost (the peers' weights no longer sum to N)")
    if "mass" in last and not last["mass"] > 0:
        return f"async: this peer's push-sum weight is {last['mass']}, not positive"
    lost = last.get("messages_missing", 0) + last.get("messages_rejected", 0)
    if rule.static and "async" not in rule.modes and lost:
        return (f"rule {rule.name!r} needs every message, and {lost} went missing or were "
                "rejected: its copies of the neighbours' public parameters are out of sync "
                "(a longer --round-deadline, or a rule that tolerates losses)")
    return None


def run_launch_command(args: argparse.Namespace) -> int:
    """``gossip launch --local N`` or ``gossip launch --hostfile HOSTS``."""
    from gossip.launch.local import launch_local

    if args.hostfile:
        return ssh_launch.run_hostfile_command(args)
    ssh_launch.refuse_ssh_flags(args)
    config = with_out(config_from_args(args, fixed={"peers": args.local}), "launch")
    return launch_local(config, progress=not args.no_progress, log_level=args.log_level,
                        keys=args.keys, plot=not args.no_plot, restarts=args.restarts)


def _restarts(text: str) -> int:
    """``--restarts K``: an integer K >= 0."""
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if k < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {k}")
    return k


def add_parsers(sub: Any, choices: Mapping[str, Callable[[], Iterable[str]]] | None = None,
                epilog: str | None = None) -> None:
    """Registers ``peer`` and ``launch`` on the ``gossip`` subcommand parsers.

    Args:
        sub: the subcommand parsers.
        choices: config key -> a function listing its valid values, for ``--help``.
        epilog: the text after each command's help.
    """
    peer = sub.add_parser(
        "peer", help="run one real peer process (ZeroMQ)",
        description="Run peer ID of a decentralized run: bind its address from the peer "
        "list, train on the shard the simulator would give it, exchange messages with its "
        "neighbours every round, write OUT/peer-XXXX.jsonl. Every peer of a run needs its "
        "own process (gossip launch starts them for you). See docs/peers.md.",
        epilog=epilog)
    peer.add_argument("--id", type=int,
                      help="this peer's id (line of PEERS); default: the rank that srun, "
                           "mpirun or torchrun gave this process")
    peer.add_argument("--peers", dest="peer_list", metavar="PEERS",
                      help="file with one address per line, or a comma-separated list "
                           "(tcp://HOST:PORT); line i is peer i (default under srun: "
                           "tcp://NODE:PORT from the job's node list)")
    peer.add_argument("--port-base", type=int, default=PORT_BASE, metavar="PORT",
                      help="without --peers under srun: the k-th peer on a node listens on "
                           f"PORT+k (default: {PORT_BASE})")
    peer.add_argument("--bind", metavar="ADDR",
                      help="address to bind, e.g. tcp://0.0.0.0:7100 (default: this "
                           "peer's entry in PEERS)")
    peer.add_argument("--keys", metavar="DIR",
                      help="encrypt and authenticate with CurveZMQ: DIR holds this peer's "
                           "peer-XXXX.key_secret and every peer's peer-XXXX.key (made by "
                           "`gossip keys`); every peer of the run must use keys, or none "
                           "(default: none, plain TCP)")
    peer.add_argument("--resume", action="store_true",
                      help="continue from OUT/checkpoints/peer-XXXX.npz (from round 0 if "
                           "there is none), catching up with the neighbours")
    add_config_flags(peer, exclude=("peers",), command="peer", real_peers=True,
                     choices=choices)
    peer.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                      help="log level (default: warning); the log goes to stderr")
    peer.add_argument("--stream-metrics", action="store_true",
                      help="also print each round's metrics record as a JSON line on stdout")
    peer.add_argument("--watch-stdin", action="store_true",
                      help="exit (as on SIGTERM) when stdin is closed, e.g. when the ssh "
                           "that started this peer goes away")
    peer.set_defaults(func=run_peer_command)

    launch = sub.add_parser(
        "launch", help="start real peer processes, here or on other machines over ssh",
        description="Start N peers on free loopback ports (--local N) or on the hosts of a "
        "hostfile over ssh (--hostfile HOSTS), follow them with one progress bar, and print "
        "the same summary as `gossip sim`; their logs go to OUT/logs/. See docs/peers.md and "
        "docs/multihost.md.", epilog=epilog)
    where = launch.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", type=int, metavar="N",
                       help="number of peers to start on this machine")
    where.add_argument("--hostfile", metavar="HOSTS",
                       help="file of 'HOST slots=K' lines: start K peers on each HOST over ssh")
    add_config_flags(launch, exclude=("peers",), command="launch", real_peers=True,
                     choices=choices)
    launch.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                        help="log level of the peers (default: warning; their logs go to "
                             "OUT/logs/)")
    launch.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    launch.add_argument("--no-plot", action="store_true",
                        help="do not draw OUT/curves.png (gossip plot draws it later)")
    launch.add_argument("--keys", metavar="DIR|auto",
                        help="encrypt and authenticate the peers' traffic with CurveZMQ, "
                             "with the keys in DIR (`gossip keys`), or fresh ones written to "
                             "OUT/keys (auto); with --hostfile each host gets the public keys "
                             "and its own peers' secret keys (default: none, plain TCP)")
    launch.add_argument("--restarts", type=_restarts, default=0, metavar="K",
                        help="restart a peer that fails, with --resume, at most K times "
                             "(after 1 s, 2 s, 4 s ...; default 0: never)")
    ssh_launch.add_flags(launch)
    launch.set_defaults(func=run_launch_command)
