"""The READMEs against the tree: the files and modules they name exist, and settings are
named as the models spell them now (``clips.dir``, not the old flat ``clips_dir``).

Flags and ``NURSERYCRY_*`` variables are checked by ``tests/test_settings_cli.py``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from nurserycry.edge.settings import EdgeSettings
from nurserycry.hub.settings import HubSettings
from nurserycry.shared.settings_model import kind_of, section_model

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    "README.md",
    "hub/README.md",
    "edge/README.md",
    "demo/README.md",
    "compose/README.md",
    "shared/README.md",
]
ROLE_FOLDERS = ("shared", "edge", "hub", "demo", "bench", "tests", "compose", "training")
# `hub/sinks/influx_schema.py`, `edge/service/`, `tests/test_x.py::test_y`
REPO_PATH = re.compile(rf"`(?:\.\./)?((?:{'|'.join(ROLE_FOLDERS)})/[\w./-]*?)(?:::(\w+))?`")


def _code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


@pytest.mark.parametrize("doc", DOCS)
def test_paths_in_the_docs_exist(doc: str) -> None:
    text = (ROOT / doc).read_text()
    found = REPO_PATH.findall(text)
    assert found, doc  # the pattern still sees the doc's paths
    for path, test in found:
        target = ROOT / path.rstrip("/")
        assert target.exists(), f"{doc}: {path} does not exist"
        if test:
            assert f"def {test}(" in target.read_text(), f"{doc}: {path} has no {test}"


def test_python_m_commands_in_the_docs_exist() -> None:
    docs = [*DOCS, "BENCHMARKS.md"]
    found = {m for d in docs for m in re.findall(r"python -m ([\w.]+)", (ROOT / d).read_text())}
    assert "bench.edge_measure" in found  # the pattern still sees them
    for module in found:
        assert importlib.util.find_spec(module) is not None, f"no module {module}"


def test_the_hub_readme_lists_its_modules() -> None:
    text = (ROOT / "hub" / "README.md").read_text()
    listing = text[text.index("Modules: ") : text.index("## Where to change what")]
    sinks_at = listing.index("`sinks/` (")
    sinks_part = listing[sinks_at : listing.index(")", sinks_at)]
    named = set(re.findall(r"`(\w+)`", listing.replace(sinks_part, "")))
    named_sinks = set(re.findall(r"`(\w+)`", sinks_part))
    modules = {p.stem for p in (ROOT / "hub").glob("*.py")} - {"__init__"}
    sinks = {p.stem for p in (ROOT / "hub" / "sinks").glob("*.py")} - {"__init__"}
    assert named == modules, "hub/README.md 'Modules:' is out of date"
    assert named_sinks == sinks, "hub/README.md 'Modules:' is out of date (sinks/)"


def test_the_shared_readme_lists_its_modules() -> None:
    text = (ROOT / "shared" / "README.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)\.py` \|", text, re.M))
    modules = {p.stem for p in (ROOT / "shared").glob("*.py")} - {"__init__"}
    assert rows == modules, "shared/README.md's table is out of date"


@pytest.mark.parametrize("doc", DOCS)
def test_settings_are_named_by_their_sections(doc: str) -> None:
    """A code span `section_field` that is really `section.field` is an old flat name."""
    for cls in (HubSettings, EdgeSettings):
        sections = [
            name
            for name, field in cls.model_fields.items()
            if section_model(field.annotation) is not None
        ]
        for span in _code_spans((ROOT / doc).read_text()):
            for section in sections:
                if span.startswith(f"{section}_"):
                    rest = span[len(section) + 1 :]
                    old = kind_of(cls, (section, rest)) is not None
                    assert not old, f"{doc}: `{span}` is now `{section}.{rest}`"
