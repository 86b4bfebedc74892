"""The web page at / in headless Chromium (Debian's `chromium`, driven by Playwright): it types,
synthesises, plays the chosen audio and every candidate's, and draws the search tree (kept and pruned)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve_support import TEST_API_KEY

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "web-page.png"  # LLASA_UPDATE_SCREENSHOT=1 rewrites it
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
    # the tree, drawn from the progress events: beam n=4 width 2 keeps 2 of 4 live candidates a step
    kept, pruned = page.locator("#tree .node.kept"), page.locator("#tree .node.pruned")
    assert kept.count() >= 2 and pruned.count() >= 2
    assert page.locator("#tree .node.finished").count() >= 4
    assert page.locator("#tree .node.chosen").count() == 1
    assert page.locator("#tree path.edge").count() >= 4  # every later node hangs from its parent
    assert "#" in kept.first.text_content() and pruned.first.text_content().split()[-1] != "–"  # score shown
    # every finished candidate plays beside its scores
    rows = page.locator("#candidates tr[data-id]")
    assert rows.count() >= 4 and page.locator("#candidates audio").count() == rows.count()
    playable = page.evaluate("""() => Promise.all([...document.querySelectorAll('#candidates audio')].map(
        (audio) => new Promise((resolve) => {
            const check = () => resolve(audio.src.startsWith('blob:') && audio.duration > 0);
            if (audio.readyState >= 1) check(); else audio.addEventListener('loadedmetadata', check);
            audio.addEventListener('error', () => resolve(false));
        })))""")
    assert playable and all(playable), playable
    assert "error" not in (page.get_attribute("#status", "class") or "")
    page.screenshot(path=str(SCREENSHOT if os.environ.get("LLASA_UPDATE_SCREENSHOT") else tmp_path / "web-page.png"),
                    full_page=True)
    assert not errors, errors
