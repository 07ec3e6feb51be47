"""Swap the model without restarting: on a file change or a ``reload-model`` command.

Threads, on purpose: a small watcher thread polls the model directory's files'
modification times every ``poll_s`` (cheap ``stat`` calls; no inotify
dependency) and loads a new model *off* the processing thread, so scoring
never waits for a load. A model that loads and checks out is handed over via
``on_loaded``; the processing thread picks it up between batches. A failed
load keeps the old model and logs why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from .counters import Counters
from .engine import HubModel

log = logging.getLogger(__name__)

M = TypeVar("M")


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the files in ``directory`` (empty if missing)."""
    try:
        files = sorted(p for p in directory.iterdir() if p.is_file())
    except OSError:
        return ()
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


class ModelWatcher(Generic[M]):
    """Reload ``directory`` with ``load`` when it changes or :meth:`request` is called."""

    def __init__(
        self,
        directory: Path,
        load: Callable[[Path], M],
        on_loaded: Callable[[M], None],
        counters: Counters,
        *,
        poll_s: float = 3.0,
        settle_s: float = 0.5,
    ) -> None:
        self.directory = directory
        self._load, self._on_loaded = load, on_loaded
        self.counters = counters
        self.poll_s, self.settle_s = poll_s, settle_s
        self._seen = fingerprint(directory)
        self._requested = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._requested.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def request(self) -> None:
        """Reload now (the ``reload-model`` command)."""
        self._requested.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            requested = self._requested.wait(self.poll_s)
            self._requested.clear()
            if self._stop.is_set():
                return
            now = fingerprint(self.directory)
            if not requested and now == self._seen:
                continue
            if not requested:  # a copy may be in progress: wait until the files settle
                self._stop.wait(self.settle_s)
                settled = fingerprint(self.directory)
                if settled != now:
                    continue
            self._seen = now
            self.reload("command" if requested else "file change")

    def reload(self, why: str) -> bool:
        """Load and hand over a model now; False (old model kept) if it fails."""
        try:
            model = self._load(self.directory)
        except Exception as exc:
            self.counters.add("model_reload_failures")
            log.error(
                "model reload (%s) from %s failed, keeping the current model: %s: %s",
                why,
                self.directory,
                type(exc).__name__,
                exc,
            )
            return False
        self.counters.add("model_reloads")
        log.info("model reloaded from %s (%s)", self.directory, why)
        self._on_loaded(model)
        return True


def load_watched(
    directory: Path | None,
    loader: Callable[[Path], HubModel] | None,
    on_loaded: Callable[[HubModel], None],
    counters: Counters,
    poll_s: float,
) -> tuple[HubModel, ModelWatcher[HubModel]]:
    """Load ``directory`` (default: the shipped model) with ``loader`` (default:
    ``CryModel.load``) and a watcher (not started yet) that reloads it."""
    from nurserycry.shared.model import CryModel, default_model_dir  # noqa: PLC0415 (TFLite on demand)

    directory = directory or default_model_dir()
    load: Callable[[Path], HubModel] = loader or CryModel.load
    model = load(directory)
    watcher = ModelWatcher[HubModel](directory, load, on_loaded, counters, poll_s=poll_s)
    return model, watcher
