"""The nurserycry command: subcommands, and roles imported lazily."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nurserycry import cli
from nurserycry.shared.extras import requirement

from tests.audio_gen import cry_like, write


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("edge", "hub", "train", "evaluate", "classify", "demo", "report"):
        assert f"  {name}" in out


def test_edge_help_points_at_install_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["edge", "--help"]) == 0
    assert "nurserycry edge install-service" in " ".join(capsys.readouterr().out.split())


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_edge_never_imports_tensorflow_or_hub_dependencies() -> None:
    code = (
        "import sys\n"
        "from nurserycry import cli\n"
        "rc = cli.main(['edge', '--help'])\n"
        "bad = [m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'influxdb_client',"
        " 'matplotlib', 'nurserycry.hub', 'nurserycry.training') if m in sys.modules]\n"
        "print(rc, bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr


def test_installed_console_script() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nurserycry", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip()


# What an edge-only install (`pip install '…[edge]'`) lacks.
EDGE_ONLY = """
import importlib.abc, sys
BLOCK = {"tensorflow", "keras", "ai_edge_litert", "tflite_runtime", "matplotlib", "tqdm",
         "threadpoolctl", "sklearn", "scipy", "influxdb_client", "amqtt", "rich"}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
from nurserycry.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["classify", "{wav}"], "hub"),
        (["train", "{dir}"], "train"),
        (["evaluate", "{dir}", "{dir}"], "train"),
        (["report", "--db", "{db}", "--out", "{dir}/night.png"], "hub"),
        (["demo"], "hub"),
        (["hub"], "hub"),
    ],
)
def test_edge_only_install_names_the_extra_to_install(
    command: list[str], extra: str, tmp_path: Path
) -> None:
    wav = write(tmp_path / "a.wav", cry_like(np.random.default_rng(0), 1.5))
    (tmp_path / "history.sqlite").write_bytes(b"")
    args = [a.format(wav=wav, dir=tmp_path, db=tmp_path / "history.sqlite") for a in command]
    out = subprocess.run(
        [sys.executable, "-c", EDGE_ONLY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert out.returncode != 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert f"{sys.executable} -m pip install " in out.stderr, out.stderr
    assert f"[{extra}]" in out.stderr, out.stderr


def test_install_command_matches_how_nurserycry_was_installed() -> None:
    checkout = Path("/opt/src/nurserycry")
    assert requirement("hub", None, checkout) == "-e '/opt/src/nurserycry[hub]'"
    editable = {"url": "file:///home/pi/nc", "dir_info": {"editable": True}}
    assert requirement("train", editable, None) == "-e '/home/pi/nc[train]'"
    local = {"url": "file:///srv/nc", "dir_info": {}}
    assert requirement("hub", local, None) == "'/srv/nc[hub]'"
    git = {"url": "https://github.com/nurserycry/nurserycry", "vcs_info": {"vcs": "git"}}
    assert requirement("hub", git, None) == (
        "'nurserycry[hub] @ git+https://github.com/nurserycry/nurserycry'"
    )
    wheel = {"url": "file:///tmp/nurserycry-0.1.0-py3-none-any.whl", "archive_info": {}}
    assert requirement("hub", wheel, None) == (
        "'nurserycry[hub] @ file:///tmp/nurserycry-0.1.0-py3-none-any.whl'"
    )
    assert requirement("edge", None, None) == (
        "'nurserycry[edge] @ git+https://github.com/nurserycry/nurserycry'"
    )


def test_report_and_classify_help_give_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default: " + str(Path("~/.local/share/nurserycry/history.sqlite").expanduser()) in out
    assert "PNG to write (night.png)" in out
    with pytest.raises(SystemExit):
        cli.main(["classify", "--help"])
    assert "default: int8" in capsys.readouterr().out


def test_report_on_a_file_that_is_not_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = write(tmp_path / "night.wav", cry_like(np.random.default_rng(0), 0.5))
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.close()
    for db, why in [(junk, "file is not a database"), (empty, "no such table")]:
        assert cli.main(["report", "--db", str(db), "--out", str(tmp_path / "n.png")]) == 1
        err = capsys.readouterr().err
        assert f"{db} is not a NurseryCry history database ({why}" in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "/nonexistent"], "no such data folder: /nonexistent"),
        (["train", ".", "--add-data", "/nope"], "no such --add-data folder: /nope"),
        (["evaluate", "/no/model", "."], "no such model directory: /no/model"),
    ],
)
def test_train_and_evaluate_check_paths_before_importing_tensorflow(
    argv: list[str], message: str
) -> None:
    script = (
        "import sys; from nurserycry.cli import main; rc = main(sys.argv[1:]); "
        "sys.exit(10 if 'tensorflow' in sys.modules else rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
