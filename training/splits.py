"""Train/validation splits that never cut a group (a family, a speaker) in two.

* :func:`split_by_group` holds out a random share of groups, stratified so that
  groups with a positive clip are held out in the same share.
* :func:`split_by_source` holds out whole sources (recording collections) and
  every positive recorded at a given sample rate, e.g. all 16 kHz cry uploads,
  so validation holds microphones, rooms and codecs training never saw.

Both return index lists into the clip list; any group that has a clip in
validation has all of its clips there.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from .dataset import CRYING, Clip

# Whole non-cry collections held out by the default source-disjoint split:
# birds, cats and dogs, household events, lullabies, a doorbell, appliances, laughter.
DEFAULT_HOLDOUT_SOURCES: Final = (
    "landbuoy/landbuoy.github.io",
    "1fmusic/Audio_cat_dog_classification",
    "maxschuman/nmf_auditory_scenes",
    "themusiclab/nhs",
    "onurds/Doorbell_AudioML",
    "Timgrau/Projektarbeit-1",
    "nevermoreLin/Laugh_LSN",
)


@dataclass(frozen=True)
class Split:
    name: str
    train: list[int]
    val: list[int]
    description: str

    def summary(self, clips: Sequence[Clip]) -> dict[str, object]:
        def count(idx: Iterable[int]) -> dict[str, int]:
            out: dict[str, int] = {}
            for i in idx:
                out[clips[i].label] = out.get(clips[i].label, 0) + 1
            return dict(sorted(out.items()))

        return {
            "name": self.name,
            "description": self.description,
            "train_clips": count(self.train),
            "val_clips": count(self.val),
            "val_groups": len({clips[i].group for i in self.val}),
        }


def _close_groups(clips: Sequence[Clip], val_groups: set[str], name: str, text: str) -> Split:
    train = [i for i, c in enumerate(clips) if c.group not in val_groups]
    val = [i for i, c in enumerate(clips) if c.group in val_groups]
    return Split(name, train, val, text)


def split_by_group(clips: Sequence[Clip], val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out ``val_fraction`` of the groups (of positive and other groups alike)."""
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")
    positive = sorted({c.group for c in clips if c.label == CRYING})
    other = sorted({c.group for c in clips} - set(positive))
    rng = random.Random(seed)
    val: set[str] = set()
    for groups in (positive, other):
        rng.shuffle(groups)
        val.update(groups[: max(1, round(len(groups) * val_fraction))])
    return _close_groups(
        clips, val, "group", f"{val_fraction:.0%} of groups held out at random (seed {seed})"
    )


def split_by_source(
    clips: Sequence[Clip],
    holdout_sources: Sequence[str] = DEFAULT_HOLDOUT_SOURCES,
    positive_orig_sr: int | None = 16_000,
) -> Split:
    """Hold out whole sources, and every positive originally at ``positive_orig_sr``."""
    val = {c.group for c in clips if c.source in holdout_sources}
    if positive_orig_sr is not None:
        val |= {c.group for c in clips if c.label == CRYING and c.orig_sr == positive_orig_sr}
    missing = set(holdout_sources) - {c.source for c in clips}
    if missing:
        raise ValueError(f"held-out sources not in the data: {sorted(missing)}")
    text = f"sources held out: {', '.join(holdout_sources)}"
    if positive_orig_sr is not None:
        text += f"; all cries originally at {positive_orig_sr} Hz (and their groups)"
    return _close_groups(clips, val, "source", text)


def no_split(clips: Sequence[Clip]) -> Split:
    return Split("none", list(range(len(clips))), [], "all data used for training")
