"""Benchmark: a real peer's round, stage by stage, and the share of it that is communication.

For each configuration (model size × topology × order), runs N real peer processes on this
host the way ``gossip launch --local N`` does (it *is* ``gossip launch``: a ring or the
exponential graph, an MLP on digits sized to about 1 MiB or 16 MiB of float32 parameters,
D-PSGD adapt-then-combine ``dpsgd`` or combine-then-adapt ``dpsgd_cta``) and reads every
peer's metrics file. Per round and peer the runtime records ``compute_time`` (the H local
steps), ``send_time`` (encode + send), ``wait_time`` (waiting for the in-neighbours'
messages), ``mix_time`` (stack + mix) and ``round_time``. After ``--skip`` warm-up rounds,
the figures are medians over every (peer, round):

- ``compute_s``: the local steps; ``exchange_s`` = ``round_s − compute_s`` (everything but
  the local steps: encode, send, wait, decode, mix); ``exchange_share`` = exchange_s / round_s;
- ``send_s``, ``wait_s``, ``mix_s``: the stages of the exchange; ``own_s`` = send + mix, the
  exchange's own work without waiting (with N peers on fewer cores, ``wait_s`` is mostly the
  neighbours' local steps, not the network);
- ``raw_s``: the time the same bytes take between two processes over raw pyzmq
  (``copy=False``, no checks): a peer's K in-neighbour messages of ``model_bytes`` each, sent
  one after the other from one process to another and acknowledged (median of 15);
  ``exchange_over_raw`` = exchange_s / raw_s, ``own_over_raw`` = own_s / raw_s.

H (``--local-steps``) defaults to the number of local steps that take about
``--compute-ms`` (50) milliseconds for the model, measured in this process before the runs.
With N peers sharing the cores of one machine, each peer's local steps take longer than
that (``compute_s`` says how long).

``--netns`` runs each peer on a "host" of its own instead: N Linux network namespaces on one
bridge (``tests/netns.py``, needs root), each host's link to the bridge paced by a token
bucket (``tc ... tbf``) at ``--rate`` (default ``1gbit``, tc syntax) for what it sends. The
peers are then ``gossip peer`` processes started in their namespaces with the same settings
as ``gossip launch --local`` gives them, and ``raw_s`` is measured between two of the
namespaces, over the same paced links. Only namespace traffic: nothing leaves the machine,
and the namespaces are removed at the end, also on failure or Ctrl-C. Each object then
also has ``netns: true`` and ``rate``.

Prints one JSON object per configuration (``--json``: only those) and writes them, with the
command, machine, versions and load, to ``OUT/peer_round.json`` (``--out``; default a new
``runs/bench-peer_round-YYYYmmdd-HHMMSS``).

Usage: ``python benchmarks/peer_round.py --json [--peers 8] [--sizes-mib 1 16]
[--topologies ring exponential] [--orders atc cta] [--rounds 30] [--compute-ms 50]
[--local-steps H] [--netns [--rate 1gbit]] [--out DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zmq

from gossip.bench.provenance import provenance, script_out, write_result
from gossip.launch.local import free_ports

INPUTS, CLASSES = 64, 10  # digits: 8x8 images, 10 classes
RULES = {"atc": "dpsgd", "cta": "dpsgd_cta"}
ACK = b"ok"
ROOT = Path(__file__).resolve().parent.parent
NETNS_TAG = "prnd"  # namespaces gprnd-PID-I (tests/netns.py)
PORT = 7100  # each peer's port in its own namespace
RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


def hidden_for(size_mib: float) -> int:
    """The MLP width whose float32 parameters take about ``size_mib`` MiB."""
    return max(1, round((size_mib * 2**20 / 4 - CLASSES) / (INPUTS + 1 + CLASSES)))


def model_bytes(hidden: int) -> int:
    return 4 * (INPUTS * hidden + hidden + hidden * CLASSES + CLASSES)


def steps_for(hidden: int, compute_ms: float) -> int:
    """Local steps of the MLP that take about ``compute_ms`` ms, timed in this process."""
    import jax  # noqa: PLC0415 (only the calibration needs JAX here)

    from gossip.bench.timing import median_time  # noqa: PLC0415
    from gossip.config import Config  # noqa: PLC0415
    from gossip.experiment import build_experiment, init_peer_params  # noqa: PLC0415
    from gossip.training import make_local_step, run_keys, sample_batch  # noqa: PLC0415

    exp = build_experiment(Config(peers=2, model_options={"hidden": [hidden]}, optimizer="sgd"))
    init_key, key = run_keys(0)
    params = init_peer_params(exp.model, exp.dataset.x_train[:1], init_key, 0, True)
    state = {"p": params, "o": exp.optimizer.init(params)}
    step = jax.jit(make_local_step(exp.model.loss, exp.optimizer))
    x, y = jax.numpy.asarray(exp.dataset.x_train), jax.numpy.asarray(exp.dataset.y_train)
    batch = sample_batch(key, x, y, jax.numpy.asarray(len(x)), exp.config.batch_size)

    def one() -> object:
        state["p"], state["o"], metrics = step(state["p"], state["o"], batch, key)
        return metrics["loss"]

    return max(1, round(compute_ms / 1e3 / median_time(one, 9, warmup=2)))


def serve_raw(address: str, messages: int) -> None:
    """The receiving end of ``raw_seconds``: acknowledges each message."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(address)
    try:
        for _ in range(messages):
            ident, *_ = sock.recv_multipart(copy=False)
            sock.send_multipart([ident, ACK])
    finally:
        sock.close()
        ctx.term()


def raw_seconds(nbytes: int, k: int, repeats: int = 15, warmup: int = 3) -> float:
    """Median seconds to move k messages of ``nbytes`` from one process to another (raw
    pyzmq, ``copy=False``, each acknowledged before the next)."""
    address = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    total = (repeats + warmup) * k
    server = subprocess.Popen([sys.executable, __file__, "--serve-raw", address, str(total)])
    try:
        return raw_client(address, nbytes, k, repeats, warmup)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def raw_client(address: str, nbytes: int, k: int, repeats: int = 15, warmup: int = 3) -> float:
    """The sending end of ``raw_seconds``: the median seconds of ``repeats`` times k messages."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    payload = np.ones(nbytes, np.uint8)
    times = []
    try:
        for i in range(repeats + warmup):
            start = time.perf_counter()
            for _ in range(k):
                sock.send(payload, copy=False)
                # the first waits for the server to start (minutes on a busy machine)
                if not sock.poll(600_000 if i == 0 else 60_000):
                    raise RuntimeError("raw pyzmq: no acknowledgement")
                sock.recv()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        sock.close()
        ctx.term()
    return statistics.median(times)


def parse_rate(rate: str) -> float:
    """Bits per second of a tc rate such as ``1gbit`` or ``500mbit``.

    Raises:
        ValueError: not ``NUMBER`` followed by bit, kbit, mbit or gbit.
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)", rate.strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--rate {rate!r} is not a rate such as 1gbit or 500mbit")
    return float(m.group(1)) * RATE_UNITS[m.group(2)]


def netns_module() -> object:
    """``tests/netns.py`` (bridged namespaces, made and always removed), imported by path."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import netns  # noqa: PLC0415
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return netns


def pace(net: object, rate: str) -> None:
    """Every host's link to the bridge sends at most ``rate``: a tbf qdisc on its ``eth0``,
    with a bucket of 1 ms of the rate (at least 32 KiB) and up to 400 ms of queue."""
    burst = max(32 * 1024, int(parse_rate(rate) / 8 / 1000))
    for i in range(len(net.names)):
        subprocess.run([*net.exec_prefix(i), "tc", "qdisc", "replace", "dev", "eth0", "root",
                        "tbf", "rate", rate, "burst", str(burst), "latency", "400ms"],
                       check=True, capture_output=True, timeout=30)


def raw_seconds_netns(net: object, nbytes: int, k: int, port: int, repeats: int = 15,
                      warmup: int = 3) -> float:
    """``raw_seconds`` from host 0 to host 1 of the namespaces, over their paced links."""
    address = f"tcp://{net.addresses[1]}:{port}"
    total = (repeats + warmup) * k
    server = subprocess.Popen([*net.exec_prefix(1), sys.executable, __file__, "--serve-raw",
                               address, str(total)], start_new_session=True)
    try:
        done = subprocess.run([*net.exec_prefix(0), sys.executable, __file__, "--raw-client",
                               address, str(nbytes), str(k), str(repeats), str(warmup)],
                              capture_output=True, text=True, timeout=600, check=True)
        return float(done.stdout.split()[-1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def run_peers_netns(net: object, run_dir: Path, options: list[str], port: int,
                    timeout: float = 1800) -> None:
    """Runs peer i of a run in namespace i (``gossip peer``, as ``gossip launch --local``
    would run it) and waits for all; every peer is killed on failure or timeout."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    peers = ",".join(f"tcp://{a}:{port}" for a in net.addresses)
    procs = []
    try:
        for i in range(len(net.names)):
            with (run_dir / "logs" / f"peer-{i:04d}.log").open("w") as log:
                procs.append(subprocess.Popen(
                    [*net.exec_prefix(i), sys.executable, "-m", "gossip", "peer", "--id",
                     str(i), "--peers", peers, *options], stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(procs):
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            if code != 0:
                log = (run_dir / "logs" / f"peer-{i:04d}.log").read_text()
                raise RuntimeError(f"peer {i} exited with {code}: {log[-2000:]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_config(args: argparse.Namespace, out: Path, hidden: int, steps: int, topology: str,
               order: str, net: object | None = None, port: int = PORT) -> dict:
    """One ``gossip launch --local`` run (with ``net``: one peer per namespace); the medians
    of its peers' stage times."""
    run_dir = out / f"{round(model_bytes(hidden) / 2**20, 1):g}mib-{topology}-{order}"
    options = ["--topology", topology, "--rule", RULES[order], "--optimizer", "sgd",
               "--rounds", str(args.rounds), "--local-steps", str(steps),
               "--eval-every", str(args.rounds), "--out", str(run_dir),
               "--checkpoint-every", "0", "--set", f"model_options={{hidden=[{hidden}]}}"]
    if net is not None:
        run_peers_netns(net, run_dir, options, port)
    else:
        command = [sys.executable, "-m", "gossip", "launch", "--local", str(args.peers),
                   *options, "--no-progress", "--no-plot"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"gossip launch failed: {done.stderr[-2000:]}")
    records = []
    for path in sorted(run_dir.glob("peer-*.jsonl")):
        records += [r for r in map(json.loads, path.read_text().splitlines())
                    if r["round"] > args.skip]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in records)

    round_s, compute_s = med("round_time"), med("compute_time")
    exchange_s = statistics.median(r["round_time"] - r["compute_time"] for r in records)
    own_s = statistics.median(r["send_time"] + r["mix_time"] for r in records)
    from gossip.topology import make_topology  # noqa: PLC0415

    k = make_topology(topology, args.peers).k
    raw = (raw_seconds_netns(net, model_bytes(hidden), k, port + 1) if net is not None
           else raw_seconds(model_bytes(hidden), k))
    where = {"netns": True, "rate": args.rate} if net is not None else {}
    return {**where, "model_bytes": model_bytes(hidden), "hidden": hidden, "peers": args.peers,
            "topology": topology, "in_neighbours": k, "order": order, "local_steps": steps,
            "rounds": args.rounds, "samples": len(records), "compute_s": round(compute_s, 5),
            "exchange_s": round(exchange_s, 5), "round_s": round(round_s, 5),
            "exchange_share": round(exchange_s / round_s, 4),
            "send_s": round(med("send_time"), 5), "wait_s": round(med("wait_time"), 5),
            "mix_s": round(med("mix_time"), 5), "raw_s": round(raw, 5),
            "exchange_over_raw": round(exchange_s / raw, 3),
            "own_s": round(own_s, 5), "own_over_raw": round(own_s / raw, 3)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-raw":
        serve_raw(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--raw-client":
        print(raw_client(sys.argv[2], *map(int, sys.argv[3:7])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only JSON")
    parser.add_argument("--peers", type=int, default=8)
    parser.add_argument("--sizes-mib", type=float, nargs="+", default=[1, 16])
    parser.add_argument("--topologies", nargs="+", default=["ring", "exponential"])
    parser.add_argument("--orders", nargs="+", choices=sorted(RULES), default=["atc", "cta"])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--skip", type=int, default=3, help="warm-up rounds left out")
    parser.add_argument("--compute-ms", type=float, default=50.0,
                        help="local work per round to aim for, in ms (sets H)")
    parser.add_argument("--local-steps", type=int, help="H (default: from --compute-ms)")
    parser.add_argument("--netns", action="store_true",
                        help="one network namespace per peer, links paced at --rate "
                        "(needs root)")
    parser.add_argument("--rate", default="1gbit",
                        help="with --netns: what each host sends at most, tc syntax")
    parser.add_argument("--out", help="output directory (default: a new "
                        "runs/bench-peer_round-YYYYmmdd-HHMMSS)")
    args = parser.parse_args()
    try:
        parse_rate(args.rate)
    except ValueError as e:
        parser.error(str(e))
    netns = netns_module() if args.netns else None
    if netns is not None and not netns.netns_available():
        parser.error("--netns needs root and `ip netns` (iproute2)")
    if not 2 <= args.peers <= 254:
        parser.error(f"--peers must be in 2..254, got {args.peers}")
    out = script_out("peer_round", args.out)
    meta = provenance()
    if netns is not None:  # SIGTERM unwinds like Ctrl-C: the namespaces are removed
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.ExitStack() as stack:
        net = None
        if netns is not None:  # removed on exit, also on an error or Ctrl-C
            net = stack.enter_context(netns.bridged_namespaces(args.peers, NETNS_TAG))
            pace(net, args.rate)
        rows = run_all(args, out, net)
    meta["load_average_after"] = provenance()["machine"]["load_average"]
    path = write_result(out / "peer_round.json", {**meta, "results": rows})
    if not args.json:
        print(f"results: {path}")


def run_all(args: argparse.Namespace, out: Path, net: object | None) -> list[dict]:
    """Every configuration, one after the other; prints each row as it is done."""
    rows = []
    ports = itertools.count(PORT, 2)
    for size in args.sizes_mib:
        hidden = hidden_for(size)
        steps = args.local_steps or steps_for(hidden, args.compute_ms)
        for topology, order in itertools.product(args.topologies, args.orders):
            row = run_config(args, out, hidden, steps, topology, order, net, next(ports))
            rows.append(row)
            print(json.dumps(row) if args.json else
                  f"{row['model_bytes'] / 2**20:5.1f} MiB {topology:11s} {order}: round "
                  f"{row['round_s'] * 1e3:7.1f} ms, compute {row['compute_s'] * 1e3:7.1f}, "
                  f"exchange {row['exchange_s'] * 1e3:7.1f} ({row['exchange_share']:.0%}; "
                  f"send {row['send_s'] * 1e3:.1f}, wait {row['wait_s'] * 1e3:.1f}, mix "
                  f"{row['mix_s'] * 1e3:.1f}), raw pyzmq {row['raw_s'] * 1e3:.2f} ms", flush=True)
    return rows


if __name__ == "__main__":
    main()
