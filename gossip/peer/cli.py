"""``gossip peer`` (one real peer process) and ``gossip launch`` (many, on this machine)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from gossip.config import add_config_flags, config_from_args

LOG_LEVELS = ("debug", "info", "warning", "error")


def _on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)  # unwinds through the peer's ``finally``: sockets closed


def run_peer_command(args: argparse.Namespace) -> int:
    """``gossip peer``: builds this peer's task from the config and runs it."""
    from gossip.peer.addresses import check_address, parse_peers
    from gossip.peer.checkpoint import CheckpointError
    from gossip.peer.runtime import Peer, PeerOptions
    from gossip.peer.setup import build_peer_task, run_digest

    addresses = parse_peers(args.peer_list)
    bind = check_address(args.bind, "--bind") if args.bind else None
    config = config_from_args(args, fixed={"peers": len(addresses)})
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=f"gossip peer {args.id}: %(levelname)s %(message)s")
    task = build_peer_task(config, args.id)
    options = PeerOptions(addresses=addresses, out_dir=Path(config.out),
                          round_deadline=config.round_deadline,
                          startup_timeout=config.startup_timeout, max_ahead=config.max_ahead,
                          save_params=config.save_params, bind=bind,
                          heartbeat_interval=config.heartbeat_interval,
                          heartbeat_timeout=config.heartbeat_timeout,
                          catchup_after=config.catchup_after,
                          checkpoint_every=config.checkpoint_every, resume=args.resume,
                          run_digest=run_digest(config))
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        last = Peer(task, options).run()
    except (OSError, CheckpointError) as e:
        logging.getLogger("gossip.peer").error("%s", e)
        return 1
    metric = next((f"{k} {v:.4f}, " for k, v in last.items() if k.startswith("local_")
                   and k != "local_loss"), "")
    print(f"gossip peer {args.id}: {last['round']} rounds in {last['time']:.1f} s, {metric}"
          f"{last['messages_received']} messages received, {last['messages_missing']} missing, "
          f"{last['messages_rejected']} rejected")
    return 0


def run_launch_command(args: argparse.Namespace) -> int:
    """``gossip launch --local N``."""
    from gossip.peer.launch import launch_local

    config = config_from_args(args, fixed={"peers": args.local})
    return launch_local(config, progress=not args.no_progress, log_level=args.log_level)


def add_parsers(sub: Any) -> None:
    """Registers ``peer`` and ``launch`` on the ``gossip`` subcommand parsers."""
    peer = sub.add_parser(
        "peer", help="run one real peer process (ZeroMQ)",
        description="Run peer ID of a decentralized run: bind its address from the peer "
        "list, train on the shard the simulator would give it, exchange messages with its "
        "neighbours every round, write OUT/peer-XXXX.jsonl.")
    peer.add_argument("--id", type=int, required=True, help="this peer's id (line of PEERS)")
    peer.add_argument("--peers", dest="peer_list", required=True, metavar="PEERS",
                      help="file with one address per line, or a comma-separated list "
                           "(tcp://HOST:PORT); line i is peer i")
    peer.add_argument("--bind", metavar="ADDR",
                      help="address to bind instead of this peer's entry in PEERS "
                           "(e.g. tcp://0.0.0.0:7100)")
    peer.add_argument("--resume", action="store_true",
                      help="continue from OUT/checkpoints/peer-XXXX.npz (from round 0 if "
                           "there is none), catching up with the neighbours")
    add_config_flags(peer, exclude=("peers",))
    peer.add_argument("--log-level", choices=LOG_LEVELS, default="warning")
    peer.set_defaults(func=run_peer_command)

    launch = sub.add_parser(
        "launch", help="start N real peer processes on this machine",
        description="Start N peers on free loopback ports, follow them with one progress "
        "bar, and print the same summary as `gossip sim`.")
    launch.add_argument("--local", type=int, required=True, metavar="N",
                        help="number of peers to start on this machine")
    add_config_flags(launch, exclude=("peers",))
    launch.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                        help="log level of the peers (their logs go to OUT/logs/)")
    launch.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    launch.set_defaults(func=run_launch_command)
