"""A pool of augmented examples drawn once, with the teacher's view of each, cached on disk.

Distillation trains for many epochs on cached teacher outputs: drawing and
augmenting examples costs about 2-3 ms each and YAMNet about 0.75 ms per chunk,
so both are paid once per pool, not once per epoch. The teacher hears exactly
the augmented audio the student's frontend turns into its input (one chunk per
``hop`` samples across the window; their embeddings and scores are averaged).

Examples from clips without a label (``TEACHER_DECIDES``) take the teacher's:
crying when its cry score (max of classes 19-21) is at least ``cry_threshold``;
otherwise not crying, with full weight when it hears a baby's babble or laughter
(a baby's own non-cry voice, rare in the labelled data) and the clip's weight
otherwise.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from nurserycry.shared.frontend import compute_features

from .examples import TEACHER_DECIDES, ExampleMaker
from .teacher import BABY_VOICE_CLASSES, Teacher, cry_score

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pool:
    codes: npt.NDArray[np.int8]  # (n, window_frames, n_mels)
    labels: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    embedding: npt.NDArray[np.float16] | None = None  # (n, teacher embedding)
    scores: npt.NDArray[np.float16] | None = None  # (n, teacher scores)
    teacher_labelled: npt.NDArray[np.int8] | None = None  # 0 no, 1 cry, 2 baby voice, 3 other

    def summary(self, labels: list[str]) -> dict[str, object]:
        out: dict[str, object] = {
            "examples": int(self.labels.size),
            "per_label": {lab: int(np.sum(self.labels == i)) for i, lab in enumerate(labels)},
        }
        if self.teacher_labelled is not None:
            t = self.teacher_labelled
            out["teacher_labelled"] = {
                "crying": int(np.sum(t == 1)),
                "baby_voice": int(np.sum(t == 2)),
                "other": int(np.sum(t == 3)),
            }
        return out


def teacher_chunks(x: npt.NDArray[np.float32], chunk: int) -> npt.NDArray[np.float32]:
    """The teacher's chunks of one window: its start and end, and every half chunk between."""
    if x.size <= chunk:
        padded = np.zeros(chunk, np.float32)
        padded[: x.size] = x
        return padded[None]
    starts = sorted({*range(0, x.size - chunk + 1, chunk // 2), x.size - chunk})
    return np.stack([x[s : s + chunk] for s in starts])


def teacher_label(
    scores: npt.NDArray[np.float32], cry: int, other: int, weight: float, cry_threshold: float
) -> tuple[int, float, int]:
    """Label, weight and kind (1 cry, 2 baby voice, 3 other) from the teacher's scores."""
    cry_p = float(cry_score(scores[None])[0])
    if cry_p >= cry_threshold:
        return cry, weight, 1
    if cry_p < 0.2 and float(scores[list(BABY_VOICE_CLASSES)].max()) >= 0.2:
        return other, 1.0, 2
    return other, weight, 3


def build_pool(
    maker: ExampleMaker,
    count: int,
    seed: int,
    *,
    teacher: Teacher | None = None,
    cache_dir: Path | None = None,
    cache_key: str = "",
    cry_threshold: float = 0.5,
) -> Pool:
    """``count`` examples from ``maker`` (seeded), with the teacher's targets if given."""
    if maker.needs_teacher and teacher is None:
        raise ValueError(
            "clips without labels (--unlabelled, --unverified teacher) and generated voices "
            "(--synthetic-voices) need --teacher"
        )
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256(
            f"{cache_key}|{count}|{seed}|{teacher.name if teacher else ''}|{cry_threshold}".encode()
        ).hexdigest()[:16]
        path = cache_dir / f"pool-{digest}.npz"
        if path.is_file():
            log.info("reading cached pool %s", path)
            with np.load(path) as npz:
                return Pool(**{k: npz[k] for k in npz.files})
    rng = np.random.default_rng([seed, 20_000])
    frames, mels = maker.cfg.window_frames, maker.params.n_mels
    codes = np.empty((count, frames, mels), np.int8)
    labels = np.empty(count, np.int64)
    weights = np.empty(count, np.float32)
    emb = scores = kinds = None
    if teacher is not None:
        emb = np.empty((count, teacher.embedding_size), np.float16)
        scores = np.empty((count, teacher.n_scores), np.float16)
        kinds = np.zeros(count, np.int8)
    with threadpool_limits(1, user_api="blas"):
        for k in tqdm(range(count), desc="pool", unit="ex", mininterval=10):
            x, label, weight = maker.one_wave(rng)
            codes[k] = compute_features(x, maker.params.sample_rate, maker.params).mel
            if teacher is not None and emb is not None and scores is not None:
                out = teacher.run(teacher_chunks(x, teacher.chunk_samples))
                emb[k] = out.embedding.mean(axis=0)
                mean_scores = out.scores.mean(axis=0)
                scores[k] = mean_scores
                if label == TEACHER_DECIDES and kinds is not None:
                    label, weight, kinds[k] = teacher_label(
                        mean_scores, maker.cry, maker.other, weight, cry_threshold
                    )
            labels[k], weights[k] = label, weight
    pool = Pool(codes, labels, weights, emb, scores, kinds)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: v for k, v in pool.__dict__.items() if v is not None}
        np.savez(path, **arrays)
        log.info("cached pool of %d examples in %s", count, path)
    return pool


def load_pools(paths: list[Path]) -> Pool:
    """Cached pools (``pool-*.npz``) joined into one, e.g. the two harness twins' pools:
    together they draw from every clip (clips held out by neither fold twice as often)."""
    parts = []
    for path in paths:
        with np.load(path) as npz:
            parts.append({k: npz[k] for k in npz.files})
    keys = set(parts[0])
    if any(set(p) != keys for p in parts):
        raise ValueError("pools to join must all have, or all lack, teacher outputs")
    return Pool(**{k: np.concatenate([p[k] for p in parts]) for k in keys})
