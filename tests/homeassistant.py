"""A real Home Assistant core for tests, driven through its REST API only.

It runs from its own virtual environment (``.ci/homeassistant`` builds it under
the cache folder), with a temporary config directory and a free loopback port:
onboarding (``/api/onboarding/users`` then ``/auth/token``), the MQTT config flow
(``/api/config/config_entries/flow``), states, history and templates (``/api/…``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

from tests.servers import free_port, terminate

HA_VERSION: Final = "2024.3.3"  # keep in step with .ci/homeassistant
USER: Final = {"name": "Test", "username": "test", "password": "nurserycry-test-pw"}


class HttpError(AssertionError):
    """Home Assistant answered with an error status."""

    def __init__(self, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{path}: HTTP {status} {body[:300]!r}")
        self.status = status


def venv_dir() -> Path:
    """Where ``.ci/homeassistant`` puts the venv (same rule, same variables)."""
    if os.environ.get("NURSERYCRY_HA_VENV"):
        return Path(os.environ["NURSERYCRY_HA_VENV"])
    cache = os.environ.get("NURSERYCRY_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nurserycry"
    )
    return Path(cache) / f"homeassistant-{HA_VERSION}"


def installed(venv: Path) -> bool:
    return (venv / ".installed").is_file() and os.access(venv / "bin" / "hass", os.X_OK)


CONFIGURATION: Final = """\
homeassistant:
  name: NurseryCry test
  time_zone: UTC
  unit_system: metric
  latitude: 0
  longitude: 0
  elevation: 0
  currency: EUR
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
history:
recorder:
  commit_interval: 1
logger:
  default: warning
"""


class HomeAssistant:
    def __init__(self, workdir: Path, venv: Path, port: int | None = None) -> None:
        self.venv, self.port = venv, port or free_port()
        self.config = workdir / "config"
        self.config.mkdir(parents=True, exist_ok=True)
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        self.log = workdir / "home-assistant.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = self.url + "/"
        self.token: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- process ---------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "hass"), "--config", str(self.config), "--skip-pip"],
                stdout=log,
                stderr=log,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.config)},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited ({self.proc.returncode}): {self.tail()}")
            with contextlib.suppress(OSError):
                self.request("/api/onboarding", auth=False)
                return
            time.sleep(0.3)
        raise TimeoutError(f"Home Assistant not up after {timeout}s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 60)
            self.proc = None

    def complaints(self, *about: str) -> list[str]:
        """WARNING/ERROR lines from the loggers whose names contain one of ``about``."""
        pattern = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) \([^)]*\) \[([^\]]+)\]")
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            m = pattern.match(line)
            if m and any(a in m.group(2) for a in about):
                found.append(line)
        return found

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    # -- REST ------------------------------------------------------------
    def request(self, path: str, data: Any = None, *, auth: bool = True, form: bool = False) -> Any:
        headers = {}
        body = None
        if data is not None:
            body = (urllib.parse.urlencode(data) if form else json.dumps(data)).encode()
            headers["Content-Type"] = (
                "application/x-www-form-urlencoded" if form else "application/json"
            )
        if auth:
            assert self.token is not None, "onboard() first"
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, body, headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise HttpError(path, exc.code, exc.read()) from exc
        if resp.headers.get_content_type() == "application/json":
            return json.loads(text)
        return text

    def onboard(self) -> None:
        """The owner account (-> a token), then the analytics and integration steps.
        (Not ``core_config``: it sets up weather and radio integrations from the internet.)"""
        user = {**USER, "client_id": self.client_id, "language": "en"}
        code = self.request("/api/onboarding/users", user, auth=False)["auth_code"]
        grant = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        self.token = self.request("/auth/token", grant, auth=False, form=True)["access_token"]
        self.request("/api/onboarding/analytics", {})
        redirect = {
            "client_id": self.client_id,
            "redirect_uri": self.client_id + "?auth_callback=1",
        }
        self.request("/api/onboarding/integration", redirect)

    def add_mqtt(self, port: int) -> dict[str, Any]:
        flow = self.request("/api/config/config_entries/flow", {"handler": "mqtt"})
        assert flow["step_id"] == "broker", flow
        done: dict[str, Any] = self.request(
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"broker": "127.0.0.1", "port": port},
        )
        assert done["type"] == "create_entry", done
        return done

    def state(self, entity_id: str) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = self.request(f"/api/states/{entity_id}")
        except HttpError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise
        return got

    def template(self, template: str) -> Any:
        """Render a template; it should end in ``| tojson``."""
        return json.loads(self.request("/api/template", {"template": template}))

    def history(self, entity_ids: list[str], since: float) -> dict[str, list[dict[str, Any]]]:
        """Every recorded row (attribute-only changes too) since ``since``, per entity."""
        start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(since))
        query = urllib.parse.urlencode(
            {"filter_entity_id": ",".join(entity_ids), "significant_changes_only": "0"}
        )
        rows = self.request(f"/api/history/period/{urllib.parse.quote(start)}?{query}")
        return {r[0]["entity_id"]: r for r in rows if r}
