"""The web page at / in headless Chromium (Debian's `chromium`, driven by Playwright): it types,
synthesises, plays the chosen audio and draws the search's steps and kept candidates."""

from __future__ import annotations

import shutil

import pytest
from serve_support import TEST_API_KEY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def test_page_synthesises_plays_and_draws_the_search(service, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{service.http_url}/")
    page.fill("#api-key", TEST_API_KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector("#strategy option[value=beam]", state="attached")
    page.fill("#text", "Hello from the page.")
    page.select_option("#strategy", "beam")
    page.fill("#n", "4")
    page.fill("#beam-width", "2")
    page.fill("#seed", "5")
    page.click("#synthesize")
    page.wait_for_selector("#chosen audio", timeout=120_000)

    audio_ok = page.evaluate("""() => new Promise((resolve) => {
        const audio = document.querySelector('#chosen audio');
        const check = () => resolve({src: audio.src, duration: audio.duration, canPlay: audio.canPlayType('audio/wav')});
        if (audio.readyState >= 1) check(); else audio.addEventListener('loadedmetadata', check);
        audio.addEventListener('error', () => resolve({error: audio.error && audio.error.code}));
    })""")
    assert audio_ok.get("src", "").startswith("blob:"), audio_ok
    assert audio_ok["duration"] > 0 and audio_ok["canPlay"], audio_ok

    steps = page.locator("#steps .step").count()
    assert steps >= 1  # one column per progress event
    kept = page.locator("#tree .candidate:not(.ancestor)")
    assert kept.count() >= 1
    assert page.locator("#tree .candidate.chosen").count() == 1
    assert page.locator("#candidates tr").count() == kept.count() + 1  # header + one row per kept candidate
    assert "error" not in (page.get_attribute("#status", "class") or "")
    page.screenshot(path=str(tmp_path / "web-page.png"), full_page=True)
    assert not errors, errors
