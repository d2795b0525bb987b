"""The status page in a real headless Chromium (Debian `chromium`): its
script fetches /api/v1/status and draws the origins × vantages matrix,
which must show a drained and a down origin as such."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from html.parser import HTMLParser

import pytest

from tests.integration.adminutil import TOKEN, admin_url, call, config_text, start_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: apt-get install -y "
                                "chromium (tests/run.sh installs it)")


class Rows(HTMLParser):
    """Collects the matrix: ``rows[origin] = (state, texts of the row's cells)``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, tuple[str, list[str]]] = {}
        self.loaded = False
        self._in_matrix = False
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body" and a.get("data-loaded") == "yes":
            self.loaded = True
        if tag == "table":
            self._in_matrix = a.get("id") == "matrix"
        if self._in_matrix and tag == "tr" and a.get("data-origin"):
            self._row = a["data-origin"]
            self.rows[self._row] = (a.get("data-state") or "", [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if tag == "table":
            self._in_matrix = False

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self.rows[self._row][1].append(data.strip())


async def dump_dom(url: str) -> str:
    """The DOM of ``url`` after its scripts ran, from headless Chromium."""
    with tempfile.TemporaryDirectory(prefix="gslb-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--virtual-time-budget=3000", "--dump-dom", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def test_the_matrix_shows_a_drained_and_a_down_origin(tmp_path, fake_origin,
                                                            refused_port):
    origin = await fake_origin()
    service = await start_service(tmp_path, config_text(origin.port, refused_port))
    try:
        await service.quorum.wait_for(lambda: not service.quorum.is_up("b") and (
            "a" in service.quorum.snapshot()), 5)
        status, _ = await call(service, "POST", "/api/v1/origins/c/drain", token=TOKEN,
                               json={"reason": "maintenance", "who": "dave"})
        assert status == 200
        page = Rows()
        page.feed(await dump_dom(admin_url(service) + "/"))
        assert page.loaded, "the page never drew the status"
        assert set(page.rows) == {"a", "b", "c"}
        state, texts = page.rows["a"]
        assert state == "up" and texts[:3] == ["a", "UP", "UP"] and texts[3].endswith(" ms")
        state, texts = page.rows["b"]
        assert state == "down" and texts[:3] == ["b", "DOWN", "DOWN"]
        state, texts = page.rows["c"]
        assert state == "drained" and texts[:2] == ["c", "DRAINED"]
    finally:
        await service.stop()
