"""The demo's embedded MQTT broker: amqtt (MQTT 3.1.1) on loopback only.

Threads and asyncio, on purpose: amqtt is asyncio-only, while everything else
in the demo (paho's network loop, the hub's processing thread, the edge
agent's capture and publisher threads) is thread-based. So the broker gets its
own event loop in its own daemon thread; the rest of the program talks to it
only over a loopback socket, and :meth:`EmbeddedBroker.start` / :meth:`stop`
cross into its loop with ``run_coroutine_threadsafe``. Nothing else touches
that loop.

It accepts anonymous clients, which is safe only because it listens on
127.0.0.1: this is for the demo and tests, never a deployment (``compose/``
runs mosquitto with users and ACLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import Future
from typing import Any

from amqtt.broker import Broker

from nurserycry.shared.errors import BrokerStartError

log = logging.getLogger(__name__)


class _ClosingBroker(Broker):  # type: ignore[misc]
    """amqtt 0.12 leaves a client's socket open after it disconnects, and its shutdown
    waits on connected clients: track each connection so both can be closed here."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections[task] = writer
        try:
            await super().stream_connected(reader, writer, listener_name)
        except asyncio.CancelledError:
            # Stopping. End normally: asyncio (3.11) reports a cancelled connection task
            # as an "unhandled exception in client_connected_cb".
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self.connections.pop(task, None)

    async def close_connections(self, timeout: float) -> None:
        """Close every client socket and end those sessions (cancelled if they hang)."""
        for writer in list(self.connections.values()):
            writer.close()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=timeout)
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=timeout)


class EmbeddedBroker:
    """``start()`` returns the port; ``stop()`` shuts it down and joins its thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("the embedded broker allows anonymous clients: loopback only")
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._ready: Future[int] = Future()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> int:
        self._thread = threading.Thread(target=self._run, name="demo-broker", daemon=True)
        self._thread.start()
        try:
            self.port = self._ready.result(timeout)
        except TimeoutError as exc:
            self.stop()
            raise BrokerStartError(f"embedded broker did not start within {timeout} s") from exc
        except Exception as exc:
            self._thread.join(timeout)
            self._thread = None
            raise BrokerStartError(f"embedded broker cannot listen on {self.host}: {exc}") from exc
        log.info("embedded MQTT broker (amqtt) listening on %s", self.url)
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._broker is not None and loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                done.result(timeout)
            except Exception:
                log.warning("embedded broker did not shut down cleanly", exc_info=True)
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        log.info("embedded MQTT broker stopped")

    # -- the broker's own thread -----------------------------------------
    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:  # report any start failure to start()
            if not self._ready.done():
                self._ready.set_exception(
                    exc if isinstance(exc, Exception) else RuntimeError(str(exc))
                )
            loop.close()
            return
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        broker = _ClosingBroker(config)
        try:
            await broker.start()
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            raise cause from None
        self._broker = broker
        server = broker._servers["default"].instance  # the bound port when asked for 0
        self._ready.set_result(int(server.sockets[0].getsockname()[1]))

    async def _shutdown(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.close_connections(timeout=1.0)
            await asyncio.wait_for(broker.shutdown(), timeout=5.0)
