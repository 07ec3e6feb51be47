"""The harness's named, source-disjoint folds of ``../shared/data``.

Each fold holds out one cry source whole and some groups of negative sources
(voices, music, ambience, animals, household events); the two folds rotate, so
every negative group is held out by one of them. A model judged on a fold must be
a twin trained without it (``nurserycry train --split fold --fold NAME``).

* ``second_source``: the second cry source (rynnchrs/Baby-Cry-Gender-Recognition,
  wideband, other babies and microphones), voices (non-verbal vocalisations,
  laughter, a baby's babble and laughter, spoken digits) and music; the night
  streams' room background is the Blanket ambience.
* ``wideband``: every Donate-a-cry upload originally recorded at 16 kHz (cries and
  unverified uploads alike: other phones than the 8 kHz ones), ambience (Moodist),
  animals and household events; night background: the Moodist ambience.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from .dataset import CRYING, Clip
from .splits import Split


@dataclass(frozen=True)
class Fold:
    name: str
    cry_source: str  # the held-out cry source, as the manifest names it
    cry_orig_sr: int | None  # only uploads recorded at this rate (None: the whole source)
    negatives: dict[str, tuple[str, ...]]  # negative group -> its held-out sources
    background: tuple[str, ...]  # sources of the night streams' room background
    also_unverified: bool = False  # hold out the cry source's unverified uploads at that rate
    description: str = ""
    background_exclude: frozenset[str] = field(default_factory=frozenset)  # not a room tone

    @property
    def sources(self) -> set[str]:
        return {s for group in self.negatives.values() for s in group} | set(self.background)

    def holds_out(self, clip: Clip) -> bool:
        if clip.source in self.sources:
            return True
        if clip.source != self.cry_source:
            return False
        if self.cry_orig_sr is not None and clip.orig_sr != self.cry_orig_sr:
            return False
        return clip.label == CRYING or self.also_unverified

    def group_of(self, clip: Clip) -> str:
        """The named group a held-out clip is reported under."""
        if clip.label == CRYING:
            return "cries"
        for name, sources in self.negatives.items():
            if clip.source in sources:
                return name
        return "background" if clip.source in self.background else "other"

    def is_background(self, clip: Clip) -> bool:
        return clip.source in self.background and clip.cls not in self.background_exclude


VOICES: Final = (
    "deeplyinc/Nonverbal-Vocalization-Dataset",
    "nevermoreLin/Laugh_LSN",
    "MaxStrange/ArtieInfant",
    "spagliarini/Infant-vocalization-space-Interspeech2022",
    "Jakobovski/free-spoken-digit-dataset",
)
MUSIC: Final = (
    "sm823zw/Music-Speech-Classification (GTZAN music/speech collection)",
    "themusiclab/nhs",
    "themusiclab/infant-speech-song",
)
ANIMALS: Final = ("1fmusic/Audio_cat_dog_classification", "landbuoy/landbuoy.github.io")
HOUSEHOLD: Final = (
    "maxschuman/nmf_auditory_scenes",
    "VISHAL-RAJA-25/Sleep-Stage-Classification",
    "seoyoungrag/snoring_detect",
    "onurds/Doorbell_AudioML",
    "Timgrau/Projektarbeit-1",
    "aliEmreOzturk/water_leakage_voice_data",
    "darrenbrazas/tinyml-audio-alert",
)
# Ambience loops that are events rather than a room's tone: not night backgrounds.
NOT_ROOM_TONE: Final = frozenset(
    {
        "ambient_ambulance_siren",
        "ambient_dog_barking",
        "ambient_fireworks",
        "ambient_crowd",
        "ambient_crowded_bar",
        "ambient_carousel",
        "ambient_construction_site",
        "ambient_thunder",
        "ambient_birds",
    }
)

FOLDS: Final = {
    f.name: f
    for f in (
        Fold(
            name="second_source",
            cry_source="rynnchrs/Baby-Cry-Gender-Recognition",
            cry_orig_sr=None,
            negatives={"voices": VOICES, "music": MUSIC},
            background=("rafaelmardojai/blanket",),
            description="second cry source held out whole; voices and music held out",
            background_exclude=NOT_ROOM_TONE,
        ),
        Fold(
            name="wideband",
            cry_source="gveres/donateacry-corpus",
            cry_orig_sr=16_000,
            negatives={"ambience": ("remvze/moodist",), "animals": ANIMALS, "household": HOUSEHOLD},
            background=("remvze/moodist",),
            also_unverified=True,
            description="Donate-a-cry uploads recorded at 16 kHz held out (cries and unverified); "
            "ambience, animals and household events held out",
            background_exclude=NOT_ROOM_TONE,
        ),
    )
}


def split_by_fold(clips: Sequence[Clip], fold: Fold) -> Split:
    """Training part: everything the fold does not hold out (whole groups)."""
    missing = (fold.sources | {fold.cry_source}) - {c.source for c in clips}
    if missing:
        raise ValueError(f"fold {fold.name}: sources not in the data: {sorted(missing)}")
    held = {c.group for c in clips if fold.holds_out(c)}
    train = [i for i, c in enumerate(clips) if c.group not in held]
    val = [i for i, c in enumerate(clips) if c.group in held]
    return Split(f"fold:{fold.name}", train, val, fold.description)


def get_fold(name: str) -> Fold:
    try:
        return FOLDS[name]
    except KeyError:
        raise ValueError(f"unknown fold {name!r}: use one of {sorted(FOLDS)}") from None
