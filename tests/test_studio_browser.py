"""The studio in real headless Chromium: a person's clicks, the server's files, no console errors.

The page is driven over the DevTools protocol (``cdp.Page``) with real mouse events at the piano roll's cells.
A screenshot of the studio is kept as a test artifact (``studio.png`` in the test's tmp folder).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from browser import chromium_binary
from notetune.pretrained.encoding import NoteEvent, canonicalize, notes_to_tokens, read_midi, write_midi
from servers import read_url

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install chromium)")

C4 = 14  # the token of MIDI 60
CELL = """(([step, pitch]) => { const r = document.getElementById('roll').getBoundingClientRect();
  return [r.left + (step + 0.5) * studio.cell, r.top + (studio.info.vocabulary.max_pitch - pitch + 0.5) * 12]; })"""


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """``notetune studio`` on a free loopback port with a fresh workspace: (url, workspace)."""
    workspace = tmp_path_factory.mktemp("studio") / "workspace"
    command = [sys.executable, "-m", "notetune.scripts.cli", "studio", "--port", "0", "--workspace", str(workspace)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = read_url(server)
        yield url, workspace
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture()
def page():
    from cdp import Page

    with Page(width=1440, height=1000) as opened:
        yield opened


def open_studio(page, url: str) -> None:
    page.goto(url)
    page.wait_for("document.body && document.body.dataset.ready === 'true'")


def tokens(page) -> list[int]:
    return page.evaluate("studio.melody.tokens.slice()")


def saved(url: str, melody_id: str) -> dict:
    return httpx.get(f"{url}api/melodies/{melody_id}").json()


def wait_for_save(page, action: str) -> None:
    page.wait_for(f"document.getElementById('status').textContent.includes({json.dumps(f'({action}')})")


def test_compose_lock_regenerate_play_export_reload_and_answer_an_ab_pair(studio, page, tmp_path):
    url, workspace = studio
    open_studio(page, url)

    # Add a quarter-note C4 at the first step: one click on the roll.
    page.click_at(*page.evaluate(CELL + "([0, 60])"))
    page.wait_for('!!document.querySelector(\'.note[data-start="0"][data-pitch="60"]\')')
    wait_for_save(page, "add C4")
    melody_id = page.evaluate("studio.melody.id")
    assert tokens(page)[:5] == [C4, 1, 1, 1, 0] and saved(url, melody_id)["tokens"] == tokens(page)

    # Lock it with the Lock tool.
    page.click("label:has(input[value=lock])")
    page.click('.note[data-start="0"]')
    page.wait_for("!!document.querySelector('.note.locked[data-start=\"0\"]')")
    wait_for_save(page, "lock C4")
    assert saved(url, melody_id)["locked"] == [0, 1, 2, 3]

    # Regenerate: the locked note stays, the rest is new.
    before = tokens(page)
    page.click("#regenerate")
    wait_for_save(page, "regenerate")
    after = tokens(page)
    assert after[:4] == [C4, 1, 1, 1] and after[4] != 1, "the locked quarter note is kept, with its length"
    assert after[4:] != before[4:], "the unlocked steps changed"
    assert page.evaluate('!!document.querySelector(\'.note.locked[data-start="0"][data-pitch="60"]\')')
    document = saved(url, melody_id)
    assert document["tokens"] == after and [h["action"] for h in document["history"]][:2] == ["add C4", "lock C4"]

    # Play: the server renders a WAV that the audio element loads (32 steps at 120 per minute = 4 s + release).
    page.click("#play")
    page.wait_for("document.getElementById('audio').readyState >= 2")
    assert 4.0 <= page.evaluate("document.getElementById('audio').duration") <= 5.5
    assert page.evaluate("document.getElementById('audio').error") is None

    # Export a MIDI file: read back, it is the same melody.
    page.click("#export-midi")
    deadline = time.monotonic() + 20
    while not list(page.downloads.glob("*.mid")) and time.monotonic() < deadline:
        page.pump(0.1)
    (midi,) = page.downloads.glob("*.mid")
    assert read_midi(midi, length=32).tolist() == after

    # Reload the studio: the melody is listed and opens as it was.
    open_studio(page, url)
    page.wait_for(f"!!document.querySelector('#melody-list li[data-id=\"{melody_id}\"]')")
    assert page.evaluate("studio.melody.id") == melody_id and tokens(page) == after
    assert page.evaluate("[...studio.melody.locked].sort((a, b) => a - b)") == [0, 1, 2, 3]
    page.click("#undo")  # undo reaches back through the saved versions, across the reload
    wait_for_save(page, "undo")
    assert tokens(page) == before
    page.click("#redo")
    wait_for_save(page, "redo")
    assert tokens(page) == after

    # A/B: a new pair, play A, prefer it; the answer is a line of preferences.jsonl.
    page.click("#tab-ab")
    page.click("#ab-new")
    page.wait_for("!document.getElementById('prefer-a').disabled")
    page.click("#play-a")
    page.wait_for("document.getElementById('audio').readyState >= 2")
    page.click("#prefer-a")
    page.wait_for("document.getElementById('ab-result').textContent.startsWith('saved')")
    (answer,) = [json.loads(line) for line in (workspace / "preferences.jsonl").read_text().splitlines()]
    assert answer["winner"] == "a" and len(answer["a"]) == len(answer["b"]) == answer["length"] == 32
    assert (answer["model_a"], answer["model_b"], answer["source"]) == ("default", "default", "studio")
    assert answer["a"] != answer["b"]

    # Back to the melody with 4 variations on show, for the screenshot.
    page.click("#tab-compose")
    page.click("#variations")
    page.wait_for("document.querySelectorAll('.variation').length === 4")
    page.wait_for("document.querySelectorAll('#figure-table td[data-figure]').length > 10")
    page.pump(0.5)
    shot = page.screenshot(tmp_path / "studio.png")
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
    page.pump(0.3)
    assert page.errors == []


def test_draw_undo_transpose_lock_a_bar_pick_a_variation_and_import(studio, page, tmp_path):
    url, _ = studio
    open_studio(page, url)
    page.click("#new-melody")
    page.wait_for("studio.melody.tokens.every((t, i) => t === (i ? 1 : 0))")

    # A locked silent bar stays silent: no regenerated note is held into it.
    page.click('#bar-header [data-bar="1"]')
    wait_for_save(page, "lock bar 2")
    page.click("#regenerate")
    wait_for_save(page, "regenerate")
    assert tokens(page)[16:] == [0] + [1] * 15 and any(t >= 2 for t in tokens(page)[:16])
    page.click("#clear")
    wait_for_save(page, "clear")

    # Drag from step 8 to the end of step 13: a six-step E4.
    start, end = page.evaluate(CELL + "([8, 64])"), page.evaluate(CELL + "([13, 64])")
    cell = page.evaluate("studio.cell")
    page.drag(start, (end[0] + cell / 2, end[1]))
    wait_for_save(page, "add E4")
    drawn = tokens(page)
    assert drawn[8:15] == [18, 1, 1, 1, 1, 1, 0]

    page.click("#up")
    wait_for_save(page, "transpose +1")
    assert tokens(page)[8] == 19 and page.evaluate("document.getElementById('key').value") == "Db major"
    page.click("#undo")
    wait_for_save(page, "undo")
    assert tokens(page) == drawn and page.evaluate("studio.melody.key") == "C major"
    page.click("#redo")
    wait_for_save(page, "redo")
    assert tokens(page)[8] == 19

    # Lock bar 1 from the bar header (its 16 steps), then pick variation 2: bar 1 is kept.
    page.click('#bar-header [data-bar="0"]')
    wait_for_save(page, "lock bar 1")
    assert page.evaluate("studio.melody.locked.size") == 16
    bar_one = tokens(page)[:16]
    page.click("#variations")
    page.wait_for("document.querySelectorAll('.variation').length === 4")
    page.click(".variation:nth-child(2) button:last-child")
    wait_for_save(page, "pick variation 2")
    assert tokens(page)[:16] == bar_one and tokens(page)[16:] != [1] * 16

    # Import a MIDI file as a new melody.
    theme = [NoteEvent(0, 4, 67), NoteEvent(4, 12, 69), NoteEvent(16, 28, 71)]
    melody = canonicalize(notes_to_tokens(theme, length=32))
    write_midi(melody, tmp_path / "theme.mid")
    page.set_file("#import", tmp_path / "theme.mid")
    wait_for_save(page, "import theme.mid")
    assert tokens(page) == melody.tolist() and page.evaluate("studio.melody.title") == "theme"
    assert page.evaluate("document.querySelectorAll('#melody-list li').length") >= 2
    assert page.errors == []
