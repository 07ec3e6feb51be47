"""A harness row that cannot ship: YAMNet's own embedding with a probe fitted on our labels.

``nurserycry harness --yamnet PATH --yamnet-probe`` adds the detector ``yamnet_probe``:
per fold, a logistic probe (``probe_head.fit_probe``) fitted on YAMNet's L2-normalised
embeddings of every 0.975 s chunk of the fold's *training* clips (their labels; no
augmentation), run on YAMNet's embeddings of the held-out clips and night streams, under
the hub's own episode rule (chunks every 0.4875 s stand in for the hub's windows). It is
the ceiling of the distillation route: what a student with a perfect copy of the
teacher's embedding, and the same probe, would score (training/README.md, tenth session).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from nurserycry.shared.episodes import Episode, EpisodeConfig, EpisodeTracker

from .dataset import Clip
from .evaluate import Wave
from .folds import FOLDS, split_by_fold
from .harness import Contender, Scored
from .probe_head import Probe, fit_probe, unit
from .teacher import YAMNET_CHUNK, YAMNET_HOP, Teacher, chunks_of

log = logging.getLogger(__name__)

RATE = 16_000


def rule_alerts(
    scores: npt.NDArray[np.float32], config: EpisodeConfig | None = None
) -> list[float]:
    """Alert times of the hub's episode rule over chunk scores (chunk ``i`` ends at
    ``(i * hop + chunk) / 16000`` s)."""
    tracker = EpisodeTracker(config or EpisodeConfig())
    episodes: dict[int, Episode] = {}
    for i, p in enumerate(scores):
        end = (i * YAMNET_HOP + YAMNET_CHUNK) / RATE
        for change in tracker.update(end - YAMNET_CHUNK / RATE, end, float(p)):
            episodes[change.episode.index] = change.episode
    for change in tracker.finish():
        episodes[change.episode.index] = change.episode
    return [e.alert_at for e in episodes.values() if e.alert]


class TeacherProbe(Contender):
    """YAMNet's embedding and a probe per fold, fitted by :meth:`prepare`."""

    def __init__(self, name: str, teacher: Teacher, c: float = 1.0) -> None:
        super().__init__(name, teacher=teacher)
        self.c = c  # the probe's inverse L2 strength, as in probe_head
        self.probes: dict[str, Probe] = {}

    def describe(self) -> str:
        return (
            "YAMNet's embedding + a logistic probe fitted on the fold's training clips, hub's "
            "episode rule (a ceiling of the distillation route; cannot ship)"
        )

    def prepare(self, fold: str, clips: Sequence[Clip], waves: Sequence[Wave]) -> None:
        assert self.teacher is not None
        split = split_by_fold(clips, FOLDS[fold])
        rows = [i for i in split.train if clips[i].label in ("crying", "not_crying")]
        emb, is_cry = [], []
        for i in tqdm(rows, desc=f"{fold}: {self.name} training clips", leave=False):
            e = self.teacher.run(chunks_of(waves[i])).embedding
            emb.append(e)
            is_cry.append(np.full(len(e), clips[i].label == "crying"))
        self.probes[fold] = fit_probe(np.concatenate(emb), np.concatenate(is_cry), c=self.c)
        log.info("%s: probe fitted on %d chunks of %d clips", fold, sum(map(len, emb)), len(rows))

    def score(self, fold: str, feats: object, wave: Wave) -> Scored:
        assert self.teacher is not None
        w, b = self.probes[fold]
        z = unit(self.teacher.run(chunks_of(wave)).embedding) @ w + b
        p = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return Scored(p, rule_alerts(p))
