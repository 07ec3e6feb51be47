"""``nurserycry edge install-service``: the systemd unit and settings file for a Pi.

Everything comes from the installed package (``edge/service/``), so it works on a
Pi that has only ``pip install`` of a git URL or a wheel, no repository folder.
Under ``--root`` (default ``/``) it writes:

* ``/etc/systemd/system/nurserycry-edge.service``: runs this interpreter's
  ``-m nurserycry edge``, after the network is online and NTP has set the clock;
* ``/etc/systemd/system/systemd-time-wait-sync.service.d/nurserycry-edge.conf``:
  that wait for NTP ends after ``--time-sync-timeout-s``;
* ``/etc/nurserycry/edge.env`` (mode 600): nursery, broker, user, password and
  device; an existing one is kept unless ``--force`` (it holds the password).

It runs no ``systemctl`` itself; it prints the commands that start the service.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.resources
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from nurserycry.shared.errors import ConfigError

from .settings import EdgeSettings

UNIT = Path("etc/systemd/system/nurserycry-edge.service")
TIME_SYNC_DROP_IN = Path("etc/systemd/system/systemd-time-wait-sync.service.d/nurserycry-edge.conf")
ENV_FILE = Path("etc/nurserycry/edge.env")
# what an env file holds without quoting (systemd strips quotes and backslashes)
_PLAIN = re.compile(r"[A-Za-z0-9._~+/=:@%^&*()\[\]{}<>,;!?|-]+")
_HOMES = ("/home/", "/root/", "/run/user/")


def template(name: str) -> str:
    return (importlib.resources.files("nurserycry.edge") / "service" / name).read_text()


def fill(text: str, values: dict[str, str]) -> str:
    """Replace every ``@KEY@`` in one pass (a value is never scanned again)."""
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nurserycry edge install-service",
        description="Write the systemd unit, a bounded wait for NTP and /etc/nurserycry/edge.env "
        "for this Pi's edge agent (from the installed package).",
    )
    p.add_argument("--nursery", required=True, help="this nursery's name, e.g. nursery-1")
    p.add_argument("--broker", required=True, help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    p.add_argument("--username", help="broker user (default: the nursery name)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the broker password from stdin's first line (default: ask, if a terminal)",
    )
    p.add_argument("--device", help="microphone: input index or part of its name")
    p.add_argument(
        "--time-sync-timeout-s",
        type=int,
        default=120,
        help="longest wait at boot for NTP before the agent starts anyway (default 120)",
    )
    p.add_argument("--root", type=Path, default=Path("/"), help="install below this folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing edge.env")
    return p


def _password(args: argparse.Namespace, user: str) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n") or None
    if sys.stdin.isatty():
        return getpass.getpass(f"broker password of {user} (add-nursery.sh printed it): ") or None
    return None


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)  # also when it existed with other rights


def main(argv: Sequence[str]) -> int:
    try:
        args = parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    user = args.username or args.nursery
    try:  # the values the agent will be started with, checked as it will check them
        EdgeSettings.load(
            None, nursery=args.nursery, mqtt={"broker": args.broker, "username": user}
        )
    except ConfigError as exc:
        sys.stderr.write(f"nurserycry edge install-service: {exc}\n")
        return 2
    password = _password(args, user)
    for what, value in (("password", password), ("device", args.device)):
        if value is not None and not _PLAIN.fullmatch(value):
            sys.stderr.write(
                f"nurserycry edge install-service: the {what} holds characters an env file "
                "cannot keep as they are (spaces, quotes, '#', '$', '\\')\n"
            )
            return 2
    python = sys.executable
    home = python.startswith(_HOMES) or sys.prefix.startswith(_HOMES)
    if home:
        sys.stderr.write(
            f"warning: {sys.prefix} is under a home folder; the service's own user can read "
            "it only if that folder is readable by others (a venv in /opt/nurserycry/venv "
            "avoids this)\n"
        )
    root: Path = args.root
    unit = fill(
        template("nurserycry-edge.service"),
        {"PYTHON": python, "PROTECT_HOME": "read-only" if home else "true"},
    )
    drop_in = fill(template("time-wait-sync.conf"), {"TIMEOUT": str(args.time_sync_timeout_s)})
    env = fill(
        template("edge.env"),
        {
            "NURSERY": args.nursery,
            "BROKER": args.broker,
            "USERNAME": user,
            "PASSWORD_LINE": f"NURSERYCRY_EDGE_MQTT__PASSWORD={password}"
            if password
            else "# NURSERYCRY_EDGE_MQTT__PASSWORD=   (the broker password, if it has one)",
            "DEVICE_LINE": f"NURSERYCRY_EDGE_DEVICE={args.device}"
            if args.device
            else "# NURSERYCRY_EDGE_DEVICE=USB",
        },
    )
    env_path = root / ENV_FILE
    try:
        _write(root / UNIT, unit, 0o644)
        _write(root / TIME_SYNC_DROP_IN, drop_in, 0o644)
        kept = env_path.exists() and not args.force
        if not kept:
            _write(env_path, env, 0o600)
    except PermissionError as exc:
        sys.stderr.write(
            f"nurserycry edge install-service: {exc.filename}: permission denied; "
            "run it as root (with sudo if you are not)\n"
        )
        return 1
    out = sys.stdout
    out.write(f"wrote {root / UNIT}\nwrote {root / TIME_SYNC_DROP_IN}\n")
    out.write(
        f"kept {env_path} as it was (--force replaces it)\n" if kept else f"wrote {env_path}\n"
    )
    out.write(
        "Start the agent now and at every boot:\n"
        "  systemctl daemon-reload && systemctl enable --now nurserycry-edge\n"
        "  journalctl -u nurserycry-edge -f\n"
    )
    return 0
