"""``spreadbus``: the one entry point. Flags override ``SPREADBUS_*`` variables override defaults.

Every user-facing failure is one line and a non-zero exit: 2 for a bad setting or flag,
1 for a runtime problem (no Redis, port in use, ...). Never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spreadbus.bus.connect import RedisUnavailableError
from spreadbus.bus.embedded import EmbeddedRedisError
from spreadbus.config import Settings, SettingsError, load_settings
from spreadbus.services import SERVICES

# flag dest -> setting name; flags absent from the command line leave the setting alone
_COMMON_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--redis-url", "redis_url", {"help": "external Redis (redis://, redis+cluster://)"}),
    ("--data-dir", "data_dir", {"help": "data folder (default ./data)"}),
    ("--pairs", "pairs", {"help": "pairs Y/X, comma separated"}),
    ("--source", "source", {"help": "auto | binance | sim | replay:PATH"}),
    ("--speed", "speed", {"help": "replay speed (1 real time, 0 fastest)"}),
    ("--log-level", "log_level", {"help": "DEBUG | INFO | WARNING | ERROR"}),
]


def _common() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    for flag, dest, extra in _COMMON_FLAGS:
        parent.add_argument(flag, dest=f"set_{dest}", **extra)
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="spreadbus",
        description="Real-time pairs-trading analytics for crypto futures on a Redis bus.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", parents=[common], help="run everything: Redis + all services")
    up.add_argument(
        "--port",
        dest="set_web_port",
        help="dashboard port (default 8050)",
        default=argparse.SUPPRESS,
    )
    up.add_argument(
        "--redis-port", dest="set_redis_port", help="embedded Redis port", default=argparse.SUPPRESS
    )
    up.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    up.add_argument(
        "--engines", dest="set_engines", help="engine processes splitting the pairs (default 1)",
        default=argparse.SUPPRESS,
    )  # fmt: skip
    up.add_argument(
        "--gateways", dest="set_gateways", help="gateways splitting the symbols (default 1)",
        default=argparse.SUPPRESS,
    )  # fmt: skip

    for spec in SERVICES.values():
        cmd = sub.add_parser(spec.name, parents=[common], help=spec.summary)
        cmd.add_argument("--check", action="store_true", help="exit 0 if healthy, 1 if not")
        if spec.name in ("engine", "gateway"):  # joining a group: docs/scaling.md
            count = "--engines" if spec.name == "engine" else "--gateways"
            for flag, text in (
                ("--shard", "auto: hold shares through leases, join the group"),
                (count, "shares the work is split into (the group's number)"),
                ("--instance", f"name of this process: heartbeat {spec.name}-<instance>"),
            ):
                cmd.add_argument(flag, dest=f"set_{flag[2:]}", help=text, default=argparse.SUPPRESS)
        if spec.name == "web":
            cmd.add_argument(
                "--port",
                dest="set_web_port",
                help="HTTP port (default 8050)",
                default=argparse.SUPPRESS,
            )
            cmd.add_argument(
                "--host",
                dest="set_web_host",
                help="bind address (127.0.0.1)",
                default=argparse.SUPPRESS,
            )

    red = sub.add_parser("redis", parents=[common], help="run the embedded Redis in the foreground")
    red.add_argument(
        "--port", dest="set_redis_port", help="port (default 6379)", default=argparse.SUPPRESS
    )
    red.add_argument("--setup", action="store_true", help="only make the server runnable, exit")

    logs = sub.add_parser("logs", parents=[common], help="print the central log readably")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    logs.add_argument("--service", help="only this service")
    logs.add_argument("--level", help="this level and above")

    bench = sub.add_parser("bench", help="run the benchmarks (same as make bench)")
    bench.add_argument("names", nargs="*", help="only these benchmarks")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("set_")}
    if "pairs" in overrides:  # typed by the user: it replaces the stored set
        overrides["pairs_override"] = True
    return load_settings(**overrides)


def _bench_checkout() -> Path | None:
    """The source checkout holding ``bench/`` (the benchmarks are not in the installed package:
    they need the test tooling and write their results next to themselves)."""
    import spreadbus  # noqa: PLC0415

    for folder in Path(spreadbus.__file__).resolve().parents:
        if (folder / "bench" / "__main__.py").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    return None


def _run_bench(names: Sequence[str]) -> int:
    checkout = _bench_checkout()
    if checkout is None:
        print(
            "spreadbus bench: the benchmarks live in the source checkout (bench/), which this "
            "installation does not come from; clone the repository and run `make bench` there",
            file=sys.stderr,
        )
        return 1
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    from bench.__main__ import discover  # noqa: PLC0415 (found just above)
    from bench.__main__ import main as bench_main  # noqa: PLC0415

    unknown = [name for name in names if name not in discover()]
    if unknown:
        print(
            f"spreadbus bench: unknown benchmark {', '.join(unknown)}; "
            f"choose from {', '.join(discover())}",
            file=sys.stderr,
        )
        return 2
    code: int = bench_main(names)
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "bench":
        return _run_bench(args.names)
    settings = _settings(args)
    if args.command == "up":
        from spreadbus.supervisor import run_up  # noqa: PLC0415

        return run_up(settings, args.duration)
    if args.command == "redis":
        from spreadbus.bus.embedded_cli import run_redis  # noqa: PLC0415

        return run_redis(settings, setup_only=args.setup)
    if args.command == "logs":
        from spreadbus.logger.view import run_logs  # noqa: PLC0415

        return run_logs(settings, follow=args.follow, service=args.service, level=args.level)
    spec = SERVICES[args.command]
    if args.check:
        from spreadbus.bus.service import check_health  # noqa: PLC0415

        healthy, message = check_health(spec.name, settings)
        print(message)
        return 0 if healthy else 1
    if not spec.built:
        print(f"spreadbus {spec.name}: not built yet", file=sys.stderr)
        return 3
    return spec.entry()(settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except SettingsError as exc:
        print(f"spreadbus: {exc}", file=sys.stderr)
        return 2
    except (EmbeddedRedisError, RedisUnavailableError) as exc:
        print(f"spreadbus {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
