"""Run configuration: a TOML file, overridden by command-line flags, validated in one place.

Every key, its default and meaning is listed in ``docs/config.md``. The resolved
configuration is written next to a run's outputs as ``config.toml``, so a run can be
repeated with ``--config OUT/config.toml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from gossip.errors import ConfigError, check_int, check_type


@dataclasses.dataclass(frozen=True)
class Config:
    """A resolved run configuration (see ``docs/config.md`` for every key).

    The one source of the defaults: ``gossip.peer.task.PeerOptions`` takes those of the real
    peers' keys (``round_deadline`` ... ``checkpoint_every``, ``save_params``) from here.
    """

    peers: int = 16
    topology: str = "ring"
    topology_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    weights: str = "default"
    rule: str = "dpsgd"
    local_steps: int = 1
    compress: str = "none"
    compress_ratio: float = 0.01
    error_feedback: bool = True
    running_sums: bool = False
    consensus_step: float = 0.0
    outer_optimizer: str = "none"
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    robust: str = "none"
    robust_f: int = 1
    byzantine: int = 0
    attack: str = "none"
    attack_scale: float = 0.0
    dataset: str = "digits"
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    partition: str = "default"
    alpha: float = 0.5
    shards_per_peer: int = 2
    model: str = "mlp"
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "momentum"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    rounds: int = 300
    eval_every: int = 25
    seed: int = 0
    same_init: bool = True
    out: str = ""
    save_params: bool = False
    round_deadline: float = 30.0
    startup_timeout: float = 60.0
    max_ahead: int = 8
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 5.0
    catchup_after: int = 3
    catchup_timeout: float = 5.0
    checkpoint_every: int = 10
    compile_cache: str = "auto"
    engine: str = "round"
    mode: str = "sync"
    local_time: float = 0.0
    max_staleness: int = 0
    step_time: float = 0.0
    slow_peers: int = 0
    slowdown: float = 1.0
    stragglers: float = 0.0
    latency: float = 0.0
    bandwidth: float = 0.0
    drop: float = 0.0
    time_bucket: float = 0.0
    churn: float = 0.0
    churn_downtime: float = 1.0
    churn_schedule: list[Any] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (TOML-serialisable)."""
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The configuration as TOML text."""
        return tomli_w.dumps(self.to_dict())


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Config)}
MIN_PEERS = 2
"""The fewest peers a run has (every message about it says ``peers must be >= 2``)."""
_POSITIVE = ("local_steps", "rounds", "eval_every", "shards_per_peer", "max_ahead",
             "catchup_after")


def _check_type(key: str, value: Any) -> Any:
    field = Config.__dataclass_fields__[key]
    default = field.default
    if default is dataclasses.MISSING:
        factory = field.default_factory
        expected: type = type(factory()) if callable(factory) else dict
    else:
        expected = type(default)
    return check_type(f"config key {key!r}", value, expected)


def resolve(file_values: dict[str, Any], overrides: dict[str, Any]) -> Config:
    """Merges file values and overrides (overrides win) into a validated ``Config``.

    Args:
        file_values: keys read from a TOML file.
        overrides: keys given on the command line (None values are ignored).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or an out-of-range number.
    """
    merged = dict(file_values)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    for key in merged:
        if key not in FIELDS:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(FIELDS)}")
    checked = {k: _check_type(k, v) for k, v in merged.items()}
    config = Config(**checked)
    check_int("peers", config.peers, MIN_PEERS)
    for key in _POSITIVE:
        check_int(key, getattr(config, key), 1)
    if config.batch_size < 0:
        raise ConfigError(f"batch_size must be >= 0 (0: the whole shard every step), got "
                          f"{config.batch_size}")
    for key in ("alpha", "round_deadline", "startup_timeout", "heartbeat_interval",
                "catchup_timeout"):
        if not getattr(config, key) > 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(config, key)}")
    if not config.heartbeat_timeout > config.heartbeat_interval:
        raise ConfigError(f"heartbeat_timeout ({config.heartbeat_timeout}) must be longer than "
                          f"heartbeat_interval ({config.heartbeat_interval})")
    check_int("checkpoint_every (0: never)", config.checkpoint_every, 0)
    check_int("robust_f", config.robust_f, 0)
    check_int("byzantine", config.byzantine, 0)
    if config.byzantine >= config.peers:
        raise ConfigError(f"byzantine must be less than peers ({config.peers}): at least one "
                          f"peer must be honest, got {config.byzantine}")
    if config.attack_scale < 0:
        raise ConfigError(f"attack_scale must be >= 0 (0: the attack's default), got "
                          f"{config.attack_scale}")
    _check_timing(config)
    return config


ENGINES = ("round", "event")
MODES = ("sync", "async")
EVENT_KEYS = ("engine", "mode", "local_time", "max_staleness", "step_time", "slow_peers",
              "slowdown", "stragglers", "latency", "bandwidth", "drop", "time_bucket", "churn",
              "churn_downtime", "churn_schedule")
"""Keys of the event simulator (``gossip sim --engine event``, docs/simulator.md)."""


SLOWDOWN_KEYS = ("slow_peers", "slowdown", "stragglers", "step_time")
"""Event keys real peers honour too: a slow peer sleeps to stretch its compute (and, with
``step_time``, every peer pads its local steps to that many seconds each)."""

PEER_EVENT_KEYS = (*SLOWDOWN_KEYS, "mode", "local_time", "max_staleness")
"""Event keys real peers honour (docs/peers.md): the slowdown keys, ``mode`` (``async``: no
round barrier), ``local_time`` (time-budgeted local work) and ``max_staleness``."""


def _default(key: str) -> Any:
    field = FIELDS[key]
    if field.default is dataclasses.MISSING and callable(field.default_factory):
        return field.default_factory()
    return field.default


def check_driver(config: Config, driver: str) -> None:
    """Refuses keys the driver that will run ``config`` does not model.

    Args:
        config: a resolved config.
        driver: ``"sim"`` (``gossip sim``: the round engine models none of the event keys)
            or ``"peers"`` (real peers: only ``PEER_EVENT_KEYS``).

    Raises:
        ConfigError: naming the first such key and what to do.
    """
    changed = [k for k in EVENT_KEYS[1:] if getattr(config, k) != _default(k)]
    if driver == "sim" and config.engine == "event" and (config.byzantine or
                                                         config.attack != "none"):
        raise ConfigError("--byzantine/--attack: the event simulator has no attackers yet; "
                          "use the round engine")
    if driver == "sim" and config.engine == "round" and changed:
        raise ConfigError(f"--{changed[0].replace('_', '-')} ({changed[0]}) needs the event "
                          "simulator: add --engine event")
    if driver == "peers":
        if config.engine != "round":
            raise ConfigError("engine is gossip sim's; real peers run in real time")
        changed = [k for k in changed if k not in PEER_EVENT_KEYS]
        if changed:
            raise ConfigError(f"--{changed[0].replace('_', '-')} ({changed[0]}): real peers do "
                              "not have it yet; the event simulator does (gossip sim "
                              "--engine event)")


def _check_timing(config: Config) -> None:
    """The event simulator's keys: names and ranges."""
    if config.engine not in ENGINES:
        raise ConfigError(f"unknown engine {config.engine!r}; valid: {', '.join(ENGINES)}")
    if config.mode not in MODES:
        raise ConfigError(f"unknown mode {config.mode!r}; valid: {', '.join(MODES)}")
    if config.local_time < 0:
        raise ConfigError(f"local_time must be > 0 seconds of local work per round, got "
                          f"{config.local_time}")
    if not config.slowdown >= 1:
        raise ConfigError(f"slowdown must be >= 1 (a factor on the compute time), got "
                          f"{config.slowdown}")
    if not 0 <= config.drop < 1:
        raise ConfigError(f"drop must be a probability in [0, 1), got {config.drop}")
    if not 0 <= config.stragglers <= 1:
        raise ConfigError(f"stragglers must be a fraction in [0, 1], got {config.stragglers}")
    for key in ("step_time", "latency", "bandwidth", "time_bucket"):
        if not getattr(config, key) >= 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(config, key)}")
    check_int("max_staleness (0: unbounded)", config.max_staleness, 0)
    check_churn(config.peers, config.churn, config.churn_downtime, config.churn_schedule)
    check_int("slow_peers", config.slow_peers, 0)
    if config.slow_peers > config.peers:
        raise ConfigError(f"slow_peers ({config.slow_peers}) must be at most peers "
                          f"({config.peers})")


def check_churn(n: int, rate: float, downtime: float,
                schedule: Sequence[Sequence[float]]) -> None:
    """Refuses out-of-range churn settings (one clear message).

    Raises:
        ConfigError: naming the key and the value.
    """
    if not rate >= 0:
        raise ConfigError(f"churn must be >= 0 departures per peer per simulated second, "
                          f"got {rate}")
    if not downtime > 0:
        raise ConfigError(f"churn_downtime must be > 0 seconds, got {downtime}")
    for entry in schedule:
        if (not isinstance(entry, (list, tuple)) or len(entry) != 3
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in entry)):
            raise ConfigError(f"churn_schedule entries must be [peer, leave_s, back_s], got "
                              f"{entry!r}")
        peer, leave, back = entry
        if peer != int(peer) or not 0 <= peer < n:
            raise ConfigError(f"churn_schedule: peer must be an integer in [0, {n}), got "
                              f"{peer!r} in {list(entry)!r}")
        if not 0 <= leave < back < float("inf"):
            raise ConfigError(f"churn_schedule: need 0 <= leave_s < back_s (finite), got "
                              f"{list(entry)!r}")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Reads a TOML config file.

    Raises:
        ConfigError: the file is missing or is not valid TOML.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


# Flags that override config keys: (flag, key, type, help). Each flag's help ends with the
# key's default (from ``Config``); keys that name something list their choices.
_FLAGS: list[tuple[str, str, type, str]] = [
    ("--peers", "peers", int, "number of peers N"),
    ("--topology", "topology", str, "who talks to whom (docs/topologies.md)"),
    ("--weights", "weights", str, "mixing weights; 'default' is uniform on regular graphs, "
                                  "Metropolis-Hastings on irregular ones, push for push_sum"),
    ("--rule", "rule", str, "gossip rule (docs/simulator.md)"),
    ("--compress", "compress", str, "compress the messages (rules choco, dpsgd, dpsgd_cta, "
                                    "local_sgd; docs/config.md)"),
    ("--compress-ratio", "compress_ratio", float,
     "fraction of each leaf that top_k / rand_k keep, in (0, 1]"),
    ("--outer-optimizer", "outer_optimizer", str,
     "outer optimizer over gossip, DiLoCo (rules dpsgd, local_sgd)"),
    ("--outer-lr", "outer_lr", float, "outer learning rate"),
    ("--outer-momentum", "outer_momentum", float, "outer momentum"),
    ("--robust", "robust", str, "robust aggregation replacing the mix (rules dpsgd, "
                                "dpsgd_cta, local_sgd; docs/robustness.md)"),
    ("--robust-f", "robust_f", int, "Byzantine in-neighbours the robust aggregation "
                                    "tolerates (clip's radius, trimmed_mean's trim)"),
    ("--byzantine", "byzantine", int, "number of attackers, drawn from the seed (with "
                                      "--attack; docs/robustness.md)"),
    ("--attack", "attack", str, "what the attackers send; gossip peer: this peer attacks"),
    ("--attack-scale", "attack_scale", float, "strength of the attack (0: its default)"),
    ("--dataset", "dataset", str, "dataset (docs/data.md)"),
    ("--model", "model", str, "model (docs/models.md)"),
    ("--rounds", "rounds", int, "communication rounds"),
    ("--local-steps", "local_steps", int, "local steps per round (H)"),
    ("--batch-size", "batch_size", int,
     "batch size per peer and step, drawn with replacement; 0: the whole shard every step "
     "(full-batch gradient)"),
    ("--lr", "lr", float, "learning rate"),
    ("--optimizer", "optimizer", str, "optimizer (optax)"),
    ("--momentum", "momentum", float, "momentum coefficient of momentum and nesterov"),
    ("--partition", "partition", str, "data split: natural is the dataset's own, default is "
                                      "natural where the dataset has one, else iid"),
    ("--alpha", "alpha", float, "Dirichlet concentration for dirichlet/quantity splits"),
    ("--seed", "seed", int, "run seed (topology, data split, init, batches)"),
    ("--out", "out", str, "output directory"),
    ("--eval-every", "eval_every", int, "evaluate every this many rounds, and after the last"),
    ("--round-deadline", "round_deadline", float,
     "seconds a round waits for missing messages"),
    ("--startup-timeout", "startup_timeout", float,
     "seconds to wait for neighbours at start-up or after losing them all"),
    ("--heartbeat-timeout", "heartbeat_timeout", float,
     "seconds of silence after which a neighbour is presumed dead"),
    ("--checkpoint-every", "checkpoint_every", int,
     "write a checkpoint every this many rounds (0: never)"),
    ("--compile-cache", "compile_cache", str,
     "persistent XLA compilation cache the peers share: a directory, auto (OUT/compile-cache) "
     "or off"),
    ("--engine", "engine", str, "simulator: round (vectorised rounds) or event (simulated "
                                "time: speeds, links, drops; docs/simulator.md)"),
    ("--mode", "mode", str, "sync (rounds) or async (no round barrier; rule push_sum on a "
                            "static topology)"),
    ("--local-time", "local_time", float,
     "time-budgeted local work: as many local steps as fit in S seconds per round, at "
     "least one (0: --local-steps)"),
    ("--max-staleness", "max_staleness", int,
     "async: a message more than this many of the receiver's rounds old is dropped "
     "(0: unbounded)"),
    ("--step-time", "step_time", float,
     "seconds of one local step at full speed (event engine; 0: measured on this machine; "
     "real peers: sleep to pad each step to it)"),
    ("--slow-peers", "slow_peers", int, "this many peers (chosen by the seed) are slower"),
    ("--slowdown", "slowdown", float, "how many times slower the slow peers are (>= 1)"),
    ("--stragglers", "stragglers", float,
     "fraction of the other peers slowed by a random factor in [2, 8]"),
    ("--latency", "latency", float, "seconds every message spends on its link"),
    ("--bandwidth", "bandwidth", float, "Mbit/s of every link (0: unlimited)"),
    ("--drop", "drop", float, "probability that a message is lost, in [0, 1)"),
    ("--time-bucket", "time_bucket", float,
     "async: events this close in simulated seconds run as one vectorised call "
     "(0: the link delay, exact)"),
    ("--churn", "churn", float,
     "event engine: mean departures per peer per simulated second of up time (0: none; "
     "churn_schedule gives explicit [peer, leave_s, back_s] ones)"),
    ("--churn-downtime", "churn_downtime", float,
     "event engine: mean simulated seconds a peer stays away after a --churn departure"),
]
_METAVARS = {"peers": "N", "topology": "NAME", "weights": "NAME", "rule": "NAME",
             "compress": "NAME", "compress_ratio": "R", "outer_optimizer": "NAME",
             "outer_lr": "LR", "outer_momentum": "M", "robust": "NAME", "robust_f": "F",
             "byzantine": "K", "attack": "NAME", "attack_scale": "S",
             "dataset": "NAME", "model": "NAME", "rounds": "R", "local_steps": "H",
             "batch_size": "B", "lr": "LR", "optimizer": "NAME", "momentum": "M",
             "partition": "NAME", "alpha": "A", "seed": "S", "out": "DIR", "eval_every": "K",
             "round_deadline": "S", "startup_timeout": "S", "heartbeat_timeout": "S",
             "checkpoint_every": "K", "compile_cache": "DIR", "engine": "NAME",
             "mode": "NAME", "local_time": "S",
             "max_staleness": "R", "step_time": "S", "slow_peers": "K", "slowdown": "F",
             "stragglers": "P", "latency": "S", "bandwidth": "MBIT", "drop": "P",
             "time_bucket": "S", "churn": "RATE", "churn_downtime": "S"}
PEER_KEYS = ("round_deadline", "startup_timeout", "max_ahead", "heartbeat_interval",
             "heartbeat_timeout", "catchup_after", "checkpoint_every", "compile_cache")
"""Keys that matter only for real peers (``gossip peer``, ``gossip launch``)."""

OUT_DEFAULT = {"sim": "a new runs/sim-YYYYmmdd-HHMMSS",
               "launch": "a new runs/launch-YYYYmmdd-HHMMSS", "peer": "runs/peer"}
"""What an empty ``out`` means for each command (``gossip.outputs``)."""

Choices = Callable[[], Iterable[str]]


class FlagHelp(str):
    """A flag's help text that ends with its default and, when the help is shown, the valid
    choices: a registry (the model zoo) is imported only then, not at every ``gossip`` call.

    argparse formats a help text with ``help % params``; ``__mod__`` adds the choices there.
    """

    choices: Choices | None
    default: str

    def __new__(cls, text: str, default: str, choices: Choices | None = None) -> FlagHelp:
        obj = super().__new__(cls, f"{text} (default: {default})")
        obj.choices, obj.default = choices, default
        return obj

    def __mod__(self, params: Any) -> str:
        if self.choices is None:
            return str.__mod__(str(self), params)
        text = str(self)[:-len(f" (default: {self.default})")]
        return (f"{text}; one of: {', '.join(self.choices())} "
                f"(default: {self.default})").replace("%%", "%")


def _default_text(key: str, command: str) -> str:
    if key == "out":
        return OUT_DEFAULT.get(command, "runs/<command>-YYYYmmdd-HHMMSS")
    value = getattr(Config(), key)
    if key == "weights":
        return "default"
    return str(value).lower() if isinstance(value, bool) else str(value)


def add_config_flags(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = (),
                     command: str = "sim", real_peers: bool = False,
                     choices: Mapping[str, Choices] | None = None) -> None:
    """Adds ``--config``, one flag per common key, ``--set KEY=VALUE`` and ``--save-params``.

    Every flag's help shows the key's default; flags that matter only for real peers go
    under their own heading, and only on a command that runs real peers.

    Args:
        parser: the subcommand's parser.
        exclude: keys whose flag the subcommand defines otherwise (``gossip peer --peers``).
        command: ``"sim"``, ``"launch"`` or ``"peer"`` (what an empty ``--out`` means).
        real_peers: add the real peers' flags (``--round-deadline`` ...).
        choices: key -> a function listing its valid names, called only to show help.
    """
    choices = choices or {}
    run = parser.add_argument_group("run configuration (docs/config.md; flags win over "
                                    "--set, which wins over --config)")
    peers = parser.add_argument_group("real peers only") if real_peers else None
    run.add_argument("--config", metavar="FILE", help="TOML config file (default: none)")
    for flag, key, typ, help_ in _FLAGS:
        if key in exclude or (key in PEER_KEYS and peers is None) or (
                key in EVENT_KEYS and key not in PEER_EVENT_KEYS and command != "sim"):
            continue
        group = peers if key in PEER_KEYS else run
        group.add_argument(flag, dest=key, type=typ, default=None,
                           metavar=_METAVARS.get(key),
                           help=FlagHelp(help_.replace("%", "%%"),
                                         _default_text(key, command), choices.get(key)))
    run.add_argument("--save-params", dest="save_params", action="store_true", default=None,
                     help="write each peer's final parameters to OUT/params/ (default: off"
                          + ("; gossip launch always does)" if command == "launch" else ")"))
    run.add_argument("--running-sums", dest="running_sums", action="store_true", default=None,
                     help="rule push_sum in sync mode sends running sums (Hadjicostis et al.): "
                     "a late or lost message's mass comes with the sender's next message "
                     "that is on time; needs a static topology (default: off; async: "
                     "always)")
    run.add_argument("--no-error-feedback", dest="error_feedback", action="store_false",
                     default=None, help="naive compressed gossip: drop what compression "
                     "removed instead of sending it later (default: error feedback on)")
    run.add_argument("--set", dest="set_values", action="append", default=[],
                     metavar="KEY=VALUE",
                     help="set any config key; VALUE is TOML, a bare word is a string "
                          "(docs/config.md), e.g. --set 'model_options={hidden=[256]}' "
                          "(repeatable; default: none)")


def parse_value(text: str) -> Any:
    """The VALUE of ``KEY=VALUE`` on the command line (``--set``, ``gossip topo --option``).

    Surrounding spaces are dropped, then the first rule that applies wins:

    - ``true`` / ``false`` in any case: a bool;
    - a TOML value: ``3``, ``0.5``, ``1e-3``, ``"quoted text"``, ``[256, 128]``,
      ``{hidden = [256]}``;
    - a number as Python writes it that TOML does not (``.5``, ``5.``, ``007``): int or float;
    - anything else is the text itself, a string (``ring``, ``edges.txt``).

    Raises:
        ConfigError: text that starts like a TOML array, table or quoted string (``[``,
            ``{``, ``"``, ``'``) but is not valid TOML: the parse error, not a string.
    """
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError as e:
        if text[:1] in ("[", "{", '"', "'"):
            reason = str(e).split(" (at ")[0]
            raise ConfigError(f"{text!r} is not a valid TOML value: {reason}") from None
        doc = {}
    if list(doc) == ["v"]:
        return doc["v"]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_assignments(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: parse_value(value)}``; a later key wins.

    Args:
        items: the flag's values, e.g. ``["p=0.3", "path=edges.txt"]``.
        flag: the flag, for errors: ``"--set"`` or ``"--option"``.

    Raises:
        ConfigError: an item without ``=`` or with nothing before it.
    """
    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}: not of the form "
                              "key=value")
        try:
            values[key.strip()] = parse_value(raw)
        except ConfigError as e:
            raise ConfigError(f"{flag} {key.strip()}: {e}") from None
    return values


def config_from_args(args: argparse.Namespace, fixed: dict[str, Any] | None = None) -> Config:
    """Resolves the configuration from ``--config``, ``--set`` and the flags (flags win).

    Args:
        args: the parsed command line.
        fixed: keys the command itself decides (``peers`` from a peer list); a config file or
            ``--set`` giving another value is an error.
    """
    file_values = load_toml(args.config) if args.config else {}
    overrides = parse_assignments(args.set_values, "--set")
    flags = {key: getattr(args, key, None) for _, key, _, _ in _FLAGS}
    flags["save_params"] = args.save_params
    flags["error_feedback"] = getattr(args, "error_feedback", None)
    flags["running_sums"] = getattr(args, "running_sums", None)
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if flags.get("local_time") is not None and not flags["local_time"] > 0:
        raise ConfigError(f"--local-time must be > 0 seconds, got {flags['local_time']}")
    for key, value in (fixed or {}).items():
        for source, values in (("the config file", file_values), ("--set", overrides)):
            if key in values and values[key] != value:
                raise ConfigError(f"{source} sets {key} = {values[key]!r}, but this command "
                                  f"has {key} = {value!r}")
        overrides[key] = value
    return resolve(file_values, overrides)
