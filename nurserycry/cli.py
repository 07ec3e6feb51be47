"""The ``nurserycry`` command: one entry point, one subcommand per role.

Each subcommand's module is imported only when that subcommand runs, so
``nurserycry edge`` on a Raspberry Pi never imports TensorFlow, the TFLite
runtime or the InfluxDB client.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from nurserycry import __version__

# subcommand -> ("module:function", one-line help). The function takes argv
# (without the subcommand) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "edge": ("nurserycry.edge.cli:main", "capture audio and publish features over MQTT"),
    "hub": ("nurserycry.hub.cli:main", "run the model on every nursery's features"),
    "demo": ("nurserycry.demo.cli:main", "broker, hub and edge in one process, on a live view"),
    "report": ("nurserycry.hub.report:main", "draw a night's timeline (misery meter) as PNG"),
    "train": ("nurserycry.training.cli:train", "train a model from folders of labelled audio"),
    "evaluate": ("nurserycry.training.cli:evaluate", "evaluate a model on labelled audio"),
    "harness": ("nurserycry.training.cli:harness", "score detectors on held-out folds and nights"),
    "classify": ("nurserycry.hub.classify:main", "run audio files through the hub's detector"),
}
# (subcommand, its first argument) -> a command of its own, listed under its subcommand
SUBCOMMANDS: dict[tuple[str, str], tuple[str, str]] = {
    ("edge", "install-service"): (
        "nurserycry.edge.install:main",
        "write the systemd unit and settings file for a Raspberry Pi",
    ),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: nurserycry <command> [options]   (version {__version__})", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {text}")
        lines += [f"  {name} {sub}: {t}" for (n, sub), (_, t) in SUBCOMMANDS.items() if n == name]
    lines += ["", "Run 'nurserycry <command> --help' for a command's options."]
    return "\n".join(lines)


def _load(target: str) -> Callable[[Sequence[str]], int]:
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    func: Callable[[Sequence[str]], int] = getattr(module, func_name)
    return func


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0 if args else 2
    if args[0] in {"-V", "--version"}:
        print(__version__)
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"nurserycry: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target = COMMANDS[name][0]
    if rest and (name, rest[0]) in SUBCOMMANDS:
        target, rest = SUBCOMMANDS[name, rest[0]][0], rest[1:]
    try:
        return _load(target)(rest)
    except ModuleNotFoundError as exc:
        # a third-party module of an extra that is not installed, at import or
        # later (a command imports its heavy modules only once it needs them)
        if exc.name is None or exc.name.split(".")[0] == "nurserycry":
            raise
        from nurserycry.shared.extras import missing_module_message

        print(missing_module_message(name, exc.name.split(".")[0]), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
