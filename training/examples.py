"""Training examples: random 1 s excerpts, augmented, through the real frontend.

Each example is cut from a waveform, augmented in the waveform domain, turned
into int8 codes by :func:`nurserycry.shared.frontend.compute_features` (the
edge's own code), decoded by :func:`~nurserycry.shared.frontend.model_input`
and finally masked SpecAugment-style.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from nurserycry.shared.frontend import DEFAULT_PARAMS, FrontendParams, compute_features, model_input

from . import augment as aug
from .dataset import Clip
from .rooms import RoomBank, in_room
from .synth import generate
from .voices import voice

log = logging.getLogger(__name__)

# Sounds a plain model mistakes for crying (data README): sampled more often.
HARD_NEGATIVE_CLASSES: Final = frozenset(
    {
        "screaming_adult",
        "moaning",
        "children_playing",
        "speech_child",
        "singing_child",
        "singing_adult_child",
        "speech_adult_child",
        "laughter",
        "baby_laugh",
        "cough",
        "cat_meow",
        "siren",
        "bird_song",
        "dog_bark",
        "car_horn",
        "music",
        "street_music",
        "lullaby",
        "singing_adult",
        "singing_infant_directed",
        "speech_adult_infant_directed",
        "sneeze",
        "yawn",
        "sigh",
        "panting",
        "phone_ringing",
        "smoke_alarm_beep",
        "doorbell",
    }
)

# The label of an example from a clip without one: the teacher decides (pool.py).
TEACHER_DECIDES: Final = -1

# Human voice that is not a baby crying: with --voice-class these train as their
# own label, so the model learns what sets a cry apart from speech, song and the like.
VOICE_LABEL: Final = "voice"
OTHER_LABEL: Final = "not_crying"
VOICE_LABEL_CLASSES: Final = frozenset(
    {
        "baby_laugh",
        "broadcast_speech",
        "children_playing",
        "cough",
        "laughter",
        "lullaby",
        "moaning",
        "nose_blowing",
        "panting",
        "screaming_adult",
        "sigh",
        "singing_adult",
        "singing_adult_child",
        "singing_child",
        "singing_infant_directed",
        "sneeze",
        "speech",
        "speech_adult",
        "speech_adult_child",
        "speech_adult_infant_directed",
        "speech_child",
        "spoken_digits",
        "spoken_words",
        "throat_clearing",
        "yawn",
    }
)

# Voices that, sped up 1.3-2x, make baby-like non-cry voice (laughing, babbling):
# the data holds almost none of a baby's own. Not song, moans or screams, which
# sped up come too close to a cry.
SPEEDUP_CLASSES: Final = VOICE_LABEL_CLASSES - {
    "children_playing",
    "lullaby",
    "moaning",
    "nose_blowing",
    "screaming_adult",
    "singing_adult",
    "singing_adult_child",
    "singing_child",
    "singing_infant_directed",
}


@dataclass(frozen=True)
class ExampleConfig:
    window_frames: int = 50
    positive_share: float = 0.4
    synthetic_share: float = 0.1  # generated hard negatives (synth.py)
    hard_negative_factor: float = 2.0
    positive_crops: int = 1  # a cry excerpt is the loudest of this many random crops
    voice_speedup: float = 0.0  # share of SPEEDUP_CLASSES negatives sped up 1.3-2x (pitch up)
    label_weights: dict[str, float] = field(default_factory=dict)  # e.g. unverified: 0.3
    label_map: dict[str, str] = field(default_factory=dict)  # e.g. unverified -> not_crying
    class_map: dict[str, str] = field(default_factory=dict)  # class -> label, e.g. cough -> voice
    augment: aug.AugmentConfig = field(default_factory=aug.AugmentConfig)
    # Clips with these labels have no label of their own: the teacher gives each of
    # their examples one (``--unlabelled DIR``, ``--unverified teacher``).
    teacher_labels: frozenset[str] = frozenset()
    teacher_share: float = 0.15  # share of examples drawn from them
    # Generated voices (voices.py) the teacher labels: speech, song, moans, babble.
    synthetic_voice_share: float = 0.0

    def fingerprint(self) -> str:
        """The settings as canonical text, for cache keys: the same on every run (a
        ``repr`` lists a frozenset in an order that changes with PYTHONHASHSEED)."""
        return json.dumps(asdict(self), sort_keys=True, default=sorted)

    def label_of(self, clip: Clip) -> str:
        """The label a clip trains as: its class's label if mapped, else its own (mapped)."""
        return self.class_map.get(clip.cls) or self.label_map.get(clip.label, clip.label)

    def teacher_labelled(self, clip: Clip) -> bool:
        return clip.label in self.teacher_labels


def window_samples(window_frames: int, params: FrontendParams = DEFAULT_PARAMS) -> int:
    """Samples that make exactly ``window_frames`` frames."""
    return (window_frames - 1) * params.hop_length + params.win_length


def clip_windows(
    wave: npt.NDArray[np.float32], window: int, hop: int, params: FrontendParams = DEFAULT_PARAMS
) -> npt.NDArray[np.int8]:
    """All windows of a whole clip as the hub cuts them; a clip shorter than one
    window is centred in digital silence."""
    need = window_samples(window, params)
    if wave.size < need:
        padded = np.zeros(need, np.float32)
        start = (need - wave.size) // 2
        padded[start : start + wave.size] = wave
        wave = padded
    mel = compute_features(wave, params.sample_rate, params).mel
    starts = range(0, mel.shape[0] - window + 1, hop)
    return np.stack([mel[s : s + window] for s in starts])


class ExampleMaker:
    """Draws augmented examples from the training clips."""

    def __init__(
        self,
        clips: Sequence[Clip],
        waves: Sequence[npt.NDArray[np.float32]],
        labels: Sequence[str],
        *,
        crying_label: str,
        config: ExampleConfig,
        params: FrontendParams = DEFAULT_PARAMS,
        rooms: RoomBank | None = None,
    ) -> None:
        self.cfg, self.params, self.labels = config, params, list(labels)
        self.n = window_samples(config.window_frames, params)
        self.waves, self.rooms = waves, rooms
        self.clip_label = [
            TEACHER_DECIDES if config.teacher_labelled(c) else self.labels.index(config.label_of(c))
            for c in clips
        ]
        self.unlabelled = np.array(
            [i for i, lab in enumerate(self.clip_label) if lab == TEACHER_DECIDES], np.int64
        )
        self.clip_weight = np.array([config.label_weights.get(c.label, 1.0) for c in clips])
        self.cry = self.labels.index(crying_label)
        pos = [i for i, lab in enumerate(self.clip_label) if lab == self.cry]
        neg = [i for i, lab in enumerate(self.clip_label) if lab not in (self.cry, TEACHER_DECIDES)]
        if not pos or not neg:
            raise ValueError("training needs clips of the crying label and of at least one other")
        self.pos, self.pos_p = np.array(pos), self._probs(clips, waves, pos, 1.0)
        self.neg, self.neg_p = (
            np.array(neg),
            self._probs(clips, waves, neg, config.hard_negative_factor),
        )
        others = [i for i in range(len(self.labels)) if i != self.cry]
        self.other = next((i for i in others if self.labels[i] == OTHER_LABEL), others[0])
        self.voice = np.array([c.cls in SPEEDUP_CLASSES for c in clips])

    @property
    def needs_teacher(self) -> bool:
        """Whether some examples take their label from a teacher."""
        return bool(self.unlabelled.size or self.cfg.synthetic_voice_share)

    @staticmethod
    def _probs(
        clips: Sequence[Clip], waves: Sequence[npt.NDArray[np.float32]], idx: list[int], hard: float
    ) -> npt.NDArray[np.float64]:
        """Class share ~ sqrt(class duration) x hardness; within a class ~ clip duration."""
        dur: dict[str, float] = {}
        for i in idx:
            dur[clips[i].cls] = dur.get(clips[i].cls, 0.0) + waves[i].size + 1.0
        p = np.array(
            [
                (waves[i].size + 1.0)
                / dur[clips[i].cls]
                * np.sqrt(dur[clips[i].cls])
                * (hard if clips[i].cls in HARD_NEGATIVE_CLASSES else 1.0)
                for i in idx
            ]
        )
        out: npt.NDArray[np.float64] = p / p.sum()
        return out

    def _negative_wave(self, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        if rng.random() < self.cfg.synthetic_share:
            return generate(rng, self.n, self.params.sample_rate)[1]
        return aug.crop(self.waves[int(rng.choice(self.neg, p=self.neg_p))], self.n, rng)

    def one(self, rng: np.random.Generator) -> tuple[npt.NDArray[np.int8], int, float]:
        """One example: int8 codes ``(window_frames, n_mels)``, label index, loss weight."""
        x, label, weight = self.one_wave(rng)
        return compute_features(x, self.params.sample_rate, self.params).mel, label, weight

    def one_wave(self, rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], int, float]:
        """One augmented excerpt as audio (what the frontend, and a teacher, hear), its
        label index (``TEACHER_DECIDES`` for unlabelled clips) and loss weight."""
        a, rate = self.cfg.augment, self.params.sample_rate
        share = self.cfg.synthetic_voice_share  # checked first so that 0 draws nothing
        if share and rng.random() < share:
            x = voice(rng, self.n, rate)
            label, weight = TEACHER_DECIDES, 1.0
            p_band = a.p_band_negative
        elif self.unlabelled.size and rng.random() < self.cfg.teacher_share:
            i = int(rng.choice(self.unlabelled))
            x = aug.crop(self.waves[i], self.n, rng)
            label, weight = TEACHER_DECIDES, float(self.clip_weight[i])
            p_band = a.p_band_negative
        elif rng.random() < self.cfg.positive_share:
            i = int(rng.choice(self.pos, p=self.pos_p))
            # The louder of `positive_crops` excerpts: a cry clip's pauses make
            # windows that hold no cry, and the label should mean "a cry is in here".
            crops = [aug.crop(self.waves[i], self.n, rng) for _ in range(self.cfg.positive_crops)]
            x = max(crops, key=aug.rms_db)
            if a.p_onset and rng.random() < a.p_onset:  # the cry starts inside the window
                x[: int(x.size * rng.uniform(0.3, 0.75))] = 0.0
            label, weight = self.cry, float(self.clip_weight[i])
            p_band = a.p_band_positive
        elif rng.random() < self.cfg.synthetic_share:
            label, weight = self.other, 1.0
            x = generate(rng, self.n, rate)[1]
            p_band = a.p_band_negative
        else:
            i = int(rng.choice(self.neg, p=self.neg_p))
            label, weight = self.clip_label[i], float(self.clip_weight[i])
            if self.voice[i] and rng.random() < self.cfg.voice_speedup:
                x = aug.speed_up(self.waves[i], self.n, rng, rng.uniform(1.3, 2.0))
            else:
                x = aug.crop(self.waves[i], self.n, rng)
            p_band = a.p_band_negative
        x = aug.set_level(x, 0.0) if aug.rms_db(x) > -150 else x
        roomed = self.rooms is not None and a.p_room > 0 and rng.random() < a.p_room
        if roomed and self.rooms is not None:  # the sound's own room, before any background
            x = in_room(x, self.rooms.pick(rng, far=bool(rng.random() < a.far_share)))
        if rng.random() < a.p_mix:
            snr = rng.uniform(*a.mix_snr_db)
            x = aug.mix(x, self._negative_wave(rng), snr if label == self.cry else snr - 10)
        if not roomed and rng.random() < a.p_reverb:
            x = aug.reverb(x, rng, rate, a.rt60_s)
        if rng.random() < p_band:
            x = aug.band_limit(x, rng, rate)
        if a.p_mic and rng.random() < a.p_mic:
            x = aug.microphone(x, rng, rate)
        level = rng.uniform(*a.rms_dbfs)
        x = aug.set_level(x, level) if aug.rms_db(x) > -150 else x
        if rng.random() < a.p_noise:
            x = aug.add_noise(x, rng, level - rng.uniform(*a.noise_snr_db))
        floor = rng.uniform(*a.floor_dbfs)
        x = aug.add_floor(x, rng, floor) if a.white_floor else aug.add_noise(x, rng, floor)
        if a.p_mp3 and rng.random() < a.p_mp3:
            x = aug.mp3(x, rng, rate)
        return np.clip(x, -1.0, 1.0).astype(np.float32), label, weight

    def batch(
        self, count: int, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """``count`` examples as model inputs (masked), labels and loss weights."""
        codes = np.empty((count, self.cfg.window_frames, self.params.n_mels), np.int8)
        y = np.empty(count, np.int64)
        w = np.empty(count, np.float32)
        # One BLAS thread: the frontend's tiny matrix products are several times
        # slower with threads that fight TensorFlow's for the same cores.
        with threadpool_limits(1, user_api="blas"):
            for k in range(count):
                codes[k], y[k], w[k] = self.one(rng)
        x = model_input(codes, self.params)
        for k in range(count):
            aug.spec_mask(x[k], rng, self.cfg.augment)
        return x, y, w
