"""End to end: ``ree viz`` as a user runs it, driven in real headless Chromium.

Debian's ``chromium`` (/usr/bin/chromium, installed by ``scripts/setup.sh --test``) is driven
by Playwright; Playwright's own browser download is not used. The server gets a free port
on 127.0.0.1, and every request the page makes must stay on it: the app works offline.
Leaves a screenshot of the page in the test's temporary folder, or where the environment
variable ``REE_VIZ_SCREENSHOT`` says (``make results`` sets it to ``results/viz.png``), so
a test run never changes a committed file.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# As root, on a machine with no network but the package registries (see scripts/setup.sh).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
STEPS = 4

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing: run scripts/setup.sh --test", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, output: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"ree viz exited with {server.returncode}:\n{''.join(output)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"ree viz did not answer at {url} within {timeout:.0f} s:\n{''.join(output)}")


@pytest.fixture
def ree_viz():
    """``ree viz --port P`` in a subprocess; yields its URL and what it printed."""
    port = free_port()
    ree = Path(sys.executable).with_name("ree")
    command = [str(ree)] if ree.exists() else [sys.executable, "-m", "abm.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [*command, "viz", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(server.stdout.readline, "")), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, server, output)
        yield url, output
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_ree_viz_in_a_real_browser(ree_viz, tmp_path):
    url, output = ree_viz
    assert any(url in line for line in output), output  # ree viz printed where it serves
    problems: list[str] = []
    foreign: list[str] = []
    profile = tempfile.mkdtemp(prefix="ree-chromium-")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1500, "height": 2600},  # tall enough for all nine charts in the screenshot
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
            page.on("request", lambda r: urlparse(r.url).hostname not in ("127.0.0.1", None) and foreign.append(r.url))

            page.goto(url)
            step = page.get_by_role("button", name="Step")
            expect(step).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Now: month 0 (Jan 2025)")).to_be_visible()
            charts = page.locator("img")
            expect(charts).to_have_count(9)
            # The supply-chain charts of issue 10 (product prices, production by stage,
            # supply by origin) follow the six element charts; the last one is drawn.
            expect(charts.nth(8)).to_have_js_property("complete", True)
            assert charts.nth(8).evaluate("image => image.naturalWidth") > 0
            first_charts = charts.evaluate_all("images => images.map(i => i.src)")

            # Move the controls: another scenario, a deeper cut that starts at once.
            page.get_by_label("Scenario (experiments/)").click(force=True)
            page.get_by_role("option", name="quota_shock.toml").click()
            page.get_by_label("Quota cut 0-1 (blank: file's)").fill("0.6")
            page.get_by_label("Cut starts, month (blank: file's)").fill("1")
            page.get_by_role("button", name="Reset").click()
            # Reset builds the model (its 12-month spin-up): seconds on a loaded machine
            expect(page.get_by_text("Scenario: quota_shock (quota_shock.toml)")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Quota cut: 60 % of CN exports, months 1-24")).to_be_visible()

            for month in range(1, STEPS + 1):
                step.click()
                expect(page.get_by_text(f"Now: month {month} ")).to_be_visible()
            expect(page.get_by_text("Nd this month: export quota by CN")).to_be_visible()
            expect(page.get_by_text("Time: 4.0")).to_be_visible()  # Mesa's own step counter

            later_charts = charts.evaluate_all("images => images.map(i => i.src)")
            assert len(later_charts) == 9
            assert all(a != b for a, b in zip(first_charts, later_charts, strict=True))
            page.wait_for_timeout(500)  # let the last images paint
            screenshot = Path(os.environ.get("REE_VIZ_SCREENSHOT") or tmp_path / "viz.png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=screenshot, full_page=True)
            assert screenshot.read_bytes()[:4] == b"\x89PNG"
        finally:
            browser.close()
            shutil.rmtree(profile, ignore_errors=True)
    assert not problems, problems
    assert not foreign, f"the page asked for something off this machine: {foreign}"
