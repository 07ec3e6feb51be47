"""A training-time teacher (YAMNet): its 1024-d embedding and 521 scores of a chunk.

Never imported by the hub, the edge or ``classify``: only ``nurserycry train``
(``--teacher PATH``), the harness (YAMNet under Frigate's rule) and ``bench``.

:class:`YamnetTeacher` reads the embedding tensor
``yamnet_frames/global_average_pooling2d/Mean``. With ``exact=True`` it does so
as the data README says (``experimental_preserve_all_tensors`` and the op
resolver without default delegates: 5.6 ms per chunk here). By default it adds
that tensor to the graph's outputs in memory (TensorFlow's flatbuffer tools), so
XNNPACK may run and keep it: 0.75 ms per chunk, the same graph (cosine 0.99
between the two kernels' embeddings on a cry, scores within 0.003).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from nurserycry.shared.episodes import EpisodeConfig

log = logging.getLogger(__name__)

Wave = npt.NDArray[np.float32]
EMBEDDING_TENSOR: Final = "yamnet_frames/global_average_pooling2d/Mean"
YAMNET_CHUNK: Final = 15_600  # 0.975 s at 16 kHz
YAMNET_HOP: Final = 7_800
CRY_CLASSES: Final = (19, 20, 21)  # Crying/sobbing, Baby cry/infant cry, Whimper
FRIGATE_THRESHOLD: Final = 0.8  # Frigate's, not the hub's on_threshold
_HUB_RULE: Final = EpisodeConfig()  # Frigate's events under the hub's release and cooldown
# Babbling, Laughter, Baby laughter, Giggle, Snicker, Belly laugh, Chuckle
BABY_VOICE_CLASSES: Final = (4, 13, 14, 15, 16, 17, 18)


@dataclass(frozen=True)
class TeacherOutput:
    embedding: npt.NDArray[np.float32]  # (n, embedding_size)
    scores: npt.NDArray[np.float32]  # (n, n_scores)


class Teacher(Protocol):
    """Anything that describes chunks of 16 kHz audio."""

    chunk_samples: int
    embedding_size: int
    n_scores: int
    name: str

    def run(self, chunks: npt.NDArray[np.float32]) -> TeacherOutput:
        """``(n, chunk_samples)`` float32 in [-1, 1] -> embeddings and scores."""
        ...


def cry_score(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """max of YAMNet's crying classes, per row (Frigate's score)."""
    out: npt.NDArray[np.float32] = scores[:, list(CRY_CLASSES)].max(axis=1)
    return out


def _with_output(model_path: Path, tensor: str) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils as fb  # noqa: PLC0415  (train extra)

    model = fb.read_model(str(model_path))
    graph = model.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors]
    if tensor not in names:
        raise ValueError(f"{model_path} has no tensor {tensor!r}: is it YAMNet?")
    graph.outputs = [*list(graph.outputs), names.index(tensor)]
    return bytes(fb.convert_object_to_bytearray(model))


class YamnetTeacher:
    """YAMNet (or any TFLite graph with that embedding tensor) as a :class:`Teacher`."""

    def __init__(self, path: Path, *, exact: bool = False) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: PLC0415

        if not path.is_file():
            raise FileNotFoundError(f"no teacher model at {path}")
        self.name = path.name
        self.interp: Any
        if exact:
            self.interp = Interpreter(
                model_path=str(path),
                num_threads=1,
                experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self.interp.allocate_tensors()
            by_name = {t["name"]: t["index"] for t in self.interp.get_tensor_details()}
            self.emb_index = int(by_name[EMBEDDING_TENSOR])
        else:
            self.interp = Interpreter(
                model_content=_with_output(path, EMBEDDING_TENSOR), num_threads=1
            )
            self.interp.allocate_tensors()
            outs = self.interp.get_output_details()
            self.emb_index = int(next(o["index"] for o in outs if o["name"] == EMBEDDING_TENSOR))
        inp, scores = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        self.in_index, self.score_index = int(inp["index"]), int(scores["index"])
        self.chunk_samples = int(inp["shape"][-1])
        self.n_scores = int(scores["shape"][-1])
        shapes = {t["index"]: t["shape"] for t in self.interp.get_tensor_details()}
        self.embedding_size = int(shapes[self.emb_index][-1])

    def run(self, chunks: npt.NDArray[np.float32]) -> TeacherOutput:
        emb = np.empty((len(chunks), self.embedding_size), np.float32)
        scores = np.empty((len(chunks), self.n_scores), np.float32)
        for i, chunk in enumerate(chunks):
            self.interp.set_tensor(self.in_index, np.asarray(chunk, np.float32)[None])
            self.interp.invoke()
            emb[i] = self.interp.get_tensor(self.emb_index)[0]
            scores[i] = self.interp.get_tensor(self.score_index)[0]
        return TeacherOutput(emb, scores)


def chunks_of(wave: Wave, chunk: int = YAMNET_CHUNK, hop: int = YAMNET_HOP) -> Wave:
    """Every ``chunk``-sample chunk of ``wave`` every ``hop`` samples (a short wave is
    centred in silence), as rows; chunk ``i`` ends at ``(i * hop + chunk) / 16000`` s."""
    if wave.size < chunk:
        padded = np.zeros(chunk, np.float32)
        padded[(chunk - wave.size) // 2 :][: wave.size] = wave
        wave = padded
    starts = range(0, wave.size - chunk + 1, hop)
    return np.stack([wave[s : s + chunk] for s in starts]).astype(np.float32)


def frigate_alerts(
    scores: npt.NDArray[np.float32],
    cooldown_s: float = _HUB_RULE.cooldown_s,
    hop: int = YAMNET_HOP,
    gap_s: float = _HUB_RULE.release_s,
) -> list[float]:
    """Frigate's threshold under the hub's cooldown, over a stream's chunk scores.

    An *event* is a run of hot chunks (score >= :data:`FRIGATE_THRESHOLD`) whose ends
    are at most ``gap_s`` apart; it spans its first hot chunk's start to its last hot
    chunk's end. It alerts at its first hot chunk's end unless it starts within
    ``cooldown_s`` of the end of the last event that alerted (one that did not alert
    leaves the cooldown where it was: the hub's rule). Returns the alert times."""
    out: list[float] = []
    alert_end: float | None = None  # end of the last event that alerted
    event_alerts, last_hot = False, -1e9
    for i in np.flatnonzero(scores >= FRIGATE_THRESHOLD):
        t = (int(i) * hop + YAMNET_CHUNK) / 16_000
        if t - last_hot > gap_s:  # a new event: the previous one ended at last_hot
            if event_alerts:
                alert_end = last_hot
            start = t - YAMNET_CHUNK / 16_000
            event_alerts = alert_end is None or start - alert_end >= cooldown_s
            if event_alerts:
                out.append(t)
        last_hot = t
    return out
