"""Shared fixtures: real servers started and stopped by the tests themselves.

A test whose server or tool is not installed (:class:`~tests.servers.ServerMissing`,
raised by :func:`~tests.servers.require` and the server classes, in a fixture or
in the test) is skipped with the reason; under ``CI=true`` (``.ci/run`` installs
everything) it fails instead, so CI never passes with server tests left out.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.servers import Mosquitto, NatsCluster, ServerMissing, VictoriaMetrics, nurserycry_cluster


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing_server() -> Generator[None, object, object]:
    try:
        return (yield)
    except ServerMissing as exc:
        reason = str(exc)
    if on_ci():
        pytest.fail(f"{reason}; CI=true: a test that needs it must run, not skip", pytrace=False)
    # reported at the test, not here (what a skipif mark does)
    raise pytest.skip.Exception(reason, _use_item_location=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _missing_server())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _missing_server())


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh anonymous mosquitto on a free loopback port."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A fresh victoria-metrics (InfluxDB line-protocol writes) on a free port."""
    vm = VictoriaMetrics(tmp_path / "vm")
    vm.start()
    yield vm
    vm.stop()


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """mosquitto that saves its state on every change, so a restart keeps sessions."""
    store = tmp_path / "mqtt-store"
    store.mkdir()
    # run as root, mosquitto drops privileges to user mosquitto, which cannot
    # enter pytest's private tmp dirs: keep the invoking user for this store
    user = "root" if os.geteuid() == 0 else ""
    conf = (
        "allow_anonymous true\npersistence true\n"
        f"persistence_location {store}/\nautosave_interval 1\nautosave_on_changes true\n"
    )
    broker = Mosquitto(tmp_path / "mqtt", conf + (f"user {user}\n" if user else ""))
    broker.start()
    yield broker
    broker.stop()
    assert (store / "mosquitto.db").is_file(), "the broker kept its state somewhere else"


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three nats-server nodes on loopback with compose/cluster's account (users, the
    partition mapping, JetStream limits)."""
    cluster = nurserycry_cluster(tmp_path / "nats")
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
