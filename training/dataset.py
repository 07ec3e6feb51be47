"""Find labelled clips: folders of audio (one folder per label) or a manifest CSV.

Folder layout: ``DATA_DIR/<label>/[<class>/...]<file>.{wav,flac,ogg}``. The
first folder is the label, the deepest folder the class; the group (the unit
a split keeps together) is ``<label>/<class>/<file stem up to the first '-'>``
unless a manifest says otherwise.

Manifest CSV: columns ``path,label`` and optionally ``cls,group,source_repo,
licence,orig_sr,duration_s`` (extra columns are kept in ``Clip.extra``).
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

AUDIO_SUFFIXES: Final = {".wav", ".flac", ".ogg"}
CRYING: Final = "crying"


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    cls: str
    group: str
    source: str = ""
    licence: str = ""
    orig_sr: int = 0
    duration_s: float = 0.0
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """A stable identifier (the path relative to the data folder when known)."""
        return self.extra.get("relpath", str(self.path))


def discover_folders(data_dir: Path) -> list[Clip]:
    """Every audio file under ``data_dir/<label>/...``, sorted by path."""
    clips: list[Clip] = []
    for path in sorted(data_dir.rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        rel = path.relative_to(data_dir)
        if len(rel.parts) < 2:
            log.warning("skipping %s: not inside a label folder", rel)
            continue
        label = rel.parts[0]
        cls = rel.parts[-2] if len(rel.parts) > 2 else label
        stem = path.stem.split("-")[0]
        group = f"{label}/{cls}/{stem}"
        clips.append(Clip(path, label, cls, group, extra={"relpath": rel.as_posix()}))
    if not clips:
        raise FileNotFoundError(f"no WAV/FLAC/OGG files in label folders under {data_dir}")
    return clips


def read_manifest(manifest: Path, data_dir: Path | None = None) -> list[Clip]:
    """Clips listed in a manifest CSV; paths are relative to ``data_dir``
    (default: the manifest's folder)."""
    root = data_dir if data_dir is not None else manifest.parent
    clips: list[Clip] = []
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            label = row["label"]
            cls = row.get("cls") or label
            rel = row["path"]
            clips.append(
                Clip(
                    path=root / rel,
                    label=label,
                    cls=cls,
                    group=row.get("group") or f"{label}/{cls}/{Path(rel).stem}",
                    source=row.get("source_repo", ""),
                    licence=row.get("licence", ""),
                    orig_sr=int(row.get("orig_sr") or 0),
                    duration_s=float(row.get("duration_s") or 0.0),
                    extra={**row, "relpath": rel},
                )
            )
    if not clips:
        raise ValueError(f"manifest {manifest} lists no clips")
    return clips


def load_clips(
    data_dir: Path, manifest: Path | None = None, extra_dirs: Sequence[Path] = ()
) -> list[Clip]:
    """A manifest if given (or ``data_dir/manifest.csv`` exists), else the folders;
    then the clips of each of ``extra_dirs`` (see :func:`added_clips`)."""
    if manifest is None and (data_dir / "manifest.csv").is_file():
        manifest = data_dir / "manifest.csv"
    clips = (
        read_manifest(manifest, data_dir) if manifest is not None else discover_folders(data_dir)
    )
    for extra in extra_dirs:
        clips += added_clips(extra)
    counts = Counter(c.label for c in clips)
    log.info("%d clips: %s", len(clips), dict(sorted(counts.items())))
    return clips


def added_clips(folder: Path) -> list[Clip]:
    """The clips of one more data folder (its manifest or its label folders), e.g. a
    nursery's own clips of alerts sorted into ``crying/`` and ``not_crying/``.

    Their groups, keys and (unless a manifest names one) source are prefixed with the
    folder's name, so they never merge with groups of the main data; a source split
    keeps them on the training side unless ``--holdout-source`` names them.
    """
    manifest = folder / "manifest.csv"
    found = read_manifest(manifest, folder) if manifest.is_file() else discover_folders(folder)
    name = folder.resolve().name
    return [
        replace(
            c,
            group=f"{name}:{c.group}",
            source=c.source or name,
            extra={**c.extra, "relpath": f"{name}/{c.key}"},
        )
        for c in found
    ]


UNLABELLED: Final = "unlabelled"


def unlabelled_clips(folder: Path) -> list[Clip]:
    """Every audio file under ``folder``, without a label (``--unlabelled DIR``): a
    teacher labels their examples. Group: ``<folder name>:<file stem up to '-'>``."""
    name = folder.resolve().name
    clips = [
        Clip(
            path,
            UNLABELLED,
            UNLABELLED,
            f"{name}:{path.stem.split('-')[0]}",
            source=name,
            extra={"relpath": f"{name}/{path.relative_to(folder).as_posix()}"},
        )
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file()
    ]
    if not clips:
        raise FileNotFoundError(f"no WAV/FLAC/OGG files under {folder}")
    return clips


def summarise(clips: list[Clip]) -> dict[str, object]:
    """Counts and durations per label, class and source (for metadata and the card)."""
    by_label: Counter[str] = Counter(c.label for c in clips)
    secs: dict[str, float] = {}
    for c in clips:
        secs[c.label] = secs.get(c.label, 0.0) + c.duration_s
    sources: dict[str, dict[str, object]] = {}
    for c in clips:
        entry = sources.setdefault(
            c.source or "(folders)",
            {"licence": c.licence, "clips": 0, "minutes": 0.0, "labels": []},
        )
        entry["clips"] = int(str(entry["clips"])) + 1
        entry["minutes"] = round(float(str(entry["minutes"])) + c.duration_s / 60, 2)
        labels = entry["labels"]
        if isinstance(labels, list) and c.label not in labels:
            labels.append(c.label)
    return {
        "clips": len(clips),
        "groups": len({c.group for c in clips}),
        "per_label": dict(sorted(by_label.items())),
        "minutes_per_label": {k: round(v / 60, 1) for k, v in sorted(secs.items())},
        "sources": sources,
    }
