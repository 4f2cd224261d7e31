"""The dashboard in a real browser (Debian's chromium driven by Playwright), fed by the synthetic
capture pipeline (skeletons) and scripted emotion events, explanation pieces and heartbeats.
Asserts on page state, not pixels. ``BODYTALK_SCREENSHOT=PATH`` saves the README's screenshot."""
from __future__ import annotations

import os
import shutil
import time

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("websockets", reason="the dashboard extra (websockets) is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (apt-get install chromium)", allow_module_level=True)

from bodytalk.stream import schema  # noqa: E402
from bodytalk.stream.transport import Publisher  # noqa: E402
from tests.helpers import free_addr, free_port, start_bodytalk, stop  # noqa: E402

BODIES = {"1": ("sad", 0.82), "2": ("happy", 0.71), "3": ("angry", 0.64)}
EXPLANATION = "Sad movement: the head hangs and the arms stay close, moving slowly."


def reading(body: str, seq: int, explanation: str | None = None) -> schema.EmotionEvent:
    label, p = BODIES[body]
    rest = (1 - p) / 4
    probs = {k: (p if k == label else rest) for k in ("neutral", "happy", "sad", "angry", "fearful")}
    return schema.EmotionEvent(sensor="synthetic", body=body, window_seq=seq, t_start=0.0, t_end=2.0, status="ok",
                               label=label, stable_label=label, probs=probs, explanation=explanation,
                               mgs=[{"name": "touch_face", "t_start": 0.3, "t_end": 0.9, "confidence": 0.8}] if body == "1" else [],
                               latency_ms={"total": 42.0})


def test_the_page_shows_bodies_labels_timeline_and_a_streamed_explanation() -> None:
    capture_addr, events_addr, port = free_addr(), free_addr(), free_port()
    source = "synthetic:?bodies=3&emotion=sad,happy,angry"
    capture = start_bodytalk(["capture", "--source", source, "--pub", capture_addr, "--duration", 60])
    dash = start_bodytalk(["dashboard", "--sub", f"{capture_addr},{events_addr}", "--port", port, "--duration", 60])
    try:
        with Publisher(events_addr) as pub, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            # bypass_csp: the page forbids eval, which Playwright's string predicates use
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
            for _ in range(100):  # the dashboard process needs a moment to bind
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=2000)
                    break
                except sync_api.Error:
                    time.sleep(0.2)
            page.wait_for_function("window.bodytalk && window.bodytalk.connected", timeout=10_000)
            page.wait_for_function("document.querySelectorAll('#bodies .body').length === 3", timeout=20_000)
            seq = 0

            def publish(explain: bool = False) -> None:
                nonlocal seq
                seq += 1
                for body in BODIES:
                    pub.send(reading(body, seq, EXPLANATION if explain and body == "1" else None))
                pub.send(schema.Status(component="server", state="running", rate_hz=3.0, queue_depth=1))

            for _ in range(5):
                publish()
                time.sleep(0.1)
            page.wait_for_function("document.querySelector('.body[data-id=synthetic_1] .label').textContent === 'sad'",
                                   timeout=10_000)
            words = EXPLANATION.split(" ")
            for i, word in enumerate(words[:5]):  # the explanation streams in, piece by piece
                pub.send(schema.EmotionText(sensor="synthetic", body="1", window_seq=seq + 1, text=word + " ", index=i))
            page.wait_for_function("document.querySelector('.body[data-id=synthetic_1] .explanation')"
                                   ".textContent.startsWith('Sad movement: the head')", timeout=10_000)
            streaming = page.get_attribute(".body[data-id=synthetic_1] .explanation", "class")
            publish(explain=True)  # the window's event carries the grounded explanation
            page.wait_for_function(f"document.querySelector('.body[data-id=synthetic_1] .explanation').textContent === {EXPLANATION!r}",
                                   timeout=10_000)
            page.wait_for_function("Number(document.querySelector('#timeline').dataset.entries) >= 18", timeout=10_000)
            # capture's heartbeat comes on its own period: wait for its row rather than race it
            page.wait_for_function("[...document.querySelectorAll('#health tbody tr')]"
                                   ".some(r => r.dataset.component.startsWith('capture'))", timeout=15_000)
            state = page.evaluate("""() => ({
                labels: [...document.querySelectorAll('#bodies .body')].map(b => [b.dataset.id, b.querySelector('.label').textContent,
                         b.querySelector('.confidence').textContent]),
                mgs: document.querySelector('.body[data-id=synthetic_1] .mgs').textContent,
                health: [...document.querySelectorAll('#health tbody tr')].map(r => r.dataset.component),
                skeletons: Object.values(window.bodytalk.frames).reduce((n, f) => n + f.bodies.length, 0),
                timeline: window.bodytalk.timeline.length})""")
            if os.environ.get("BODYTALK_SCREENSHOT"):
                time.sleep(1.0)
                page.screenshot(path=os.environ["BODYTALK_SCREENSHOT"])
            browser.close()
    finally:
        stop(dash)
        stop(capture)
    assert "streaming" in streaming
    assert state["labels"] == [["synthetic_1", "sad", "82%"], ["synthetic_2", "happy", "71%"], ["synthetic_3", "angry", "64%"]]
    assert state["mgs"] == "touch face"
    assert "server" in state["health"] and any(c.startswith("capture") for c in state["health"])
    assert state["skeletons"] == 3 and state["timeline"] >= 18
