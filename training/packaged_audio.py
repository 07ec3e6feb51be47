"""Unlabelled audio from Debian packages, for the teacher to label (``--unlabelled``).

The harness's ``second_source`` fold holds out every voice and all music of
``../shared/data``, and a student that never heard music or speech takes a
harmonic sound for a cry. Debian ships recorded music and voices under free
licences in its game packages; installed with ``apt-get``, they are one more
folder of audio without labels, which the teacher describes like the unverified
uploads (``pool.teacher_label``):

* ``wesnoth-1.16-music``: 41 orchestral and folk tracks (2.1 h; GPL-2+);
* ``hedgewars-data``: 26 music tracks of many styles (1.6 h; GPL-2), 15 voice packs
  of short shouts, laughs, moans and words in several accents and languages
  (839 clips, 15 min; GFDL-1.3) and 104 sound effects (GFDL-1.3; a few CC BY-SA 3.0).

``build(out)`` writes mono 16 kHz FLAC excerpts named ``<source>_<stem>-<k>.flac``
(a group per track, ``dataset.unlabelled_clips``): up to ``per_track`` evenly spaced
excerpts of ``excerpt_s`` seconds from each music track, every ``voice_every``-th
voice clip and every sound whole. Nothing from here is committed or shipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf

from nurserycry.shared.frontend import DEFAULT_PARAMS

from .audio import read_audio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    pattern: str  # a glob under /
    licence: str
    music: bool  # long tracks cut into excerpts; otherwise clips kept whole


SOURCES: Final = (
    Source(
        "wesnoth",
        "wesnoth-1.16-music",
        "usr/share/games/wesnoth/*/data/core/music/*.ogg",
        "GPL-2+",
        music=True,
    ),
    Source(
        "hedgewars_music",
        "hedgewars-data",
        "usr/share/games/hedgewars/Data/Music/*.ogg",
        "GPL-2",
        music=True,
    ),
    Source(
        "hedgewars_voices",
        "hedgewars-data",
        "usr/share/games/hedgewars/Data/Sounds/voices/*/*.ogg",
        "GFDL-1.3",
        music=False,
    ),
    Source(
        "hedgewars_sounds",
        "hedgewars-data",
        "usr/share/games/hedgewars/Data/Sounds/*.ogg",
        "GFDL-1.3 (Droplet*: CC BY-SA 3.0)",
        music=False,
    ),
)


def excerpts(
    wave: npt.NDArray[np.float32], length: int, count: int
) -> list[npt.NDArray[np.float32]]:
    """Up to ``count`` evenly spaced, non-overlapping excerpts of ``length`` samples
    (the whole wave if it is shorter than one)."""
    if wave.size <= length:
        return [wave]
    count = max(1, min(count, wave.size // length))
    starts = np.linspace(0, wave.size - length, count).astype(np.int64)
    return [wave[s : s + length] for s in starts]


def build(
    out: Path,
    *,
    root: Path = Path("/"),
    excerpt_s: float = 10.0,
    per_track: int = 6,
    voice_every: int = 2,
) -> dict[str, int]:
    """Write the excerpts under ``out``; returns files written per source. Raises
    ``FileNotFoundError`` naming the package to install when a source is missing."""
    rate = DEFAULT_PARAMS.sample_rate
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    for src in SOURCES:
        files = sorted(root.glob(src.pattern))
        if not files:
            raise FileNotFoundError(
                f"no {src.name} audio under {root / src.pattern}: apt-get install {src.package}"
            )
        if not src.music:
            files = files[::voice_every] if src.name.endswith("voices") else files
        count = 0
        for path in files:
            wave = read_audio(path)
            parts = excerpts(wave, int(excerpt_s * rate), per_track) if src.music else [wave]
            stem = f"{src.name}_{path.parent.name}_{path.stem}".replace("-", "_")
            for k, part in enumerate(parts):
                sf.write(str(out / f"{stem}-{k}.flac"), part, rate)
                count += 1
        written[src.name] = count
        log.info(
            "%s: %d files from %d (%s, %s)", src.name, count, len(files), src.package, src.licence
        )
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m nurserycry.training.packaged_audio",
        description="Write excerpts of Debian's packaged game music and voices as a folder "
        "for `nurserycry train --unlabelled DIR` (apt-get install wesnoth-1.16-music "
        "hedgewars-data first).",
    )
    parser.add_argument("out", type=Path, help="folder to write FLAC excerpts to")
    parser.add_argument("--root", type=Path, default=Path("/"), help="where packages are")
    parser.add_argument("--excerpt-s", type=float, default=10.0)
    parser.add_argument("--per-track", type=int, default=6, help="excerpts per music track")
    parser.add_argument("--voice-every", type=int, default=2, help="keep every N-th voice clip")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        build(
            args.out,
            root=args.root,
            excerpt_s=args.excerpt_s,
            per_track=args.per_track,
            voice_every=args.voice_every,
        )
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
