"""`notetune compare`: one self-contained index.html, checked on disk and in real headless Chromium."""

import json
import re
import shutil
from pathlib import Path

import pytest
from browser import chromium_binary, run_chromium
from notetune.scripts.cli import main

# Injected at the top of a copy of the page: records load errors and console errors, then, once every audio
# element has its metadata (or failed), writes what it saw into <pre id="browser-check"> for --dump-dom.
CHECK_SCRIPT = """<script>
(function () {
  var errors = [];
  var original = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
  window.addEventListener("error", function (event) {
    var t = event.target;
    if (t && t !== window && t.getAttribute) { errors.push("failed to load " + t.getAttribute("src")); }
    else { errors.push("script error: " + event.message); }
  }, true);
  var written = false;
  function report() {
    if (written) return;
    written = true;
    var result = {
      images: Array.prototype.map.call(document.images, function (i) {
        return {src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth}; }),
      audios: Array.prototype.map.call(document.querySelectorAll("audio"), function (a) {
        return {src: a.getAttribute("src"), readyState: a.readyState, duration: a.duration,
                error: a.error ? a.error.code : null}; }),
      metricRows: document.querySelectorAll("table#metrics tbody tr").length,
      errors: errors
    };
    var pre = document.createElement("pre");
    pre.id = "browser-check";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  window.addEventListener("load", function () {
    var audios = Array.prototype.slice.call(document.querySelectorAll("audio"));
    Promise.all(audios.map(function (a) {
      if (a.readyState >= 1 || a.error) return Promise.resolve();
      return new Promise(function (resolve) {
        a.addEventListener("loadedmetadata", resolve);
        a.addEventListener("error", resolve);
      });
    })).then(report);
    setTimeout(report, 8000);
  });
})();
</script>"""


def check_in_browser(page: Path) -> tuple[dict, list[str]]:
    """Load a copy of ``page`` (same folder, so relative links resolve) with the check script injected."""
    checked = page.with_name("browser-check.html")
    checked.write_text(page.read_text().replace('<meta charset="utf-8">', '<meta charset="utf-8">' + CHECK_SCRIPT, 1))
    done = run_chromium(
        "--virtual-time-budget=15000", "--enable-logging=stderr", "--v=0", "--dump-dom", checked.as_uri()
    )
    match = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, re.S)
    assert match, f"the page never reported (exit {done.returncode}): {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&")), console


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_prior_dir, tiny_corpus_path):
    root = tmp_path_factory.mktemp("compare")
    cooled = root / "cooled"
    assert main(["sample", "--model", tiny_prior_dir, "--num", "60", "--temperature", "0.5", "--out", str(cooled)]) == 0
    out = root / "report"
    code = main(
        [
            "compare",
            tiny_prior_dir,
            str(cooled / "samples.npz"),
            tiny_corpus_path,
            "--out",
            str(out),
            "--num",
            "60",
            "--labels",
            "prior",
            "--labels",
            "cooled",
            "--labels",
            "corpus",
            "--prior",
            tiny_prior_dir,
            "--corpus",
            tiny_corpus_path,
            "--samples-shown",
            "2",
            "--resamples",
            "100",
        ]
    )
    assert code == 0
    return out


def test_compare_writes_one_self_contained_page(report, capsys):
    page = (report / "index.html").read_text()
    assert '<table class="metrics" id="metrics">' in page
    for label in ("prior", "cooled", "corpus"):
        assert f"<th>{label}</th>" in page
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links and not [link for link in links if re.match(r"[a-z]+:|/", link)], "only relative links"
    for link in links:
        assert (report / link).is_file(), f"{link} is missing"
    # 3 plots, one bar self-similarity matrix per set, 2 piano rolls per set
    assert len(re.findall(r"<audio ", page)) == 6 and len(re.findall(r"<img ", page)) == 3 + 3 + 6
    assert page.count('.mid">MIDI</a>') == 6 and page.count('.musicxml">MusicXML</a>') == 6
    assert "sine-wave synthesis" in page or "fluidsynth and the General MIDI soundfont" in page
    assert "p &lt; 0.05" in page or "p < 0.001" in page
    data = json.loads((report / "metrics.json").read_text())
    assert [e["label"] for e in data["evaluations"]] == ["prior", "cooled", "corpus"]
    corpus_p = data["p_values_against_first"]["corpus"]
    assert corpus_p["copy_rate_8gram"] < 0.001  # the corpus copies itself; the untrained prior does not


def test_compare_refuses_a_missing_set(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install chromium)")
def test_report_loads_in_headless_chromium(report, tmp_path):
    result, console = check_in_browser(report / "index.html")
    assert result["errors"] == [] and console == []
    assert result["metricRows"] > 30
    assert len(result["images"]) == 12
    for image in result["images"]:
        assert image["complete"] and image["width"] > 100, image
    assert len(result["audios"]) == 6
    for audio in result["audios"]:
        assert audio["error"] is None and audio["readyState"] >= 1 and audio["duration"] >= 4.0, audio

    screenshot = tmp_path / "report.png"
    done = run_chromium(f"--screenshot={screenshot}", "--window-size=1280,2000", (report / "index.html").as_uri())
    assert screenshot.is_file(), done.stderr[-2000:]
    header = screenshot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1280 and int.from_bytes(header[20:24], "big") == 2000


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install chromium)")
def test_the_browser_check_notices_broken_media(report, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(report, broken)
    next(broken.glob("samples/*/sample_00.png")).unlink()
    next(broken.glob("samples/*/sample_01.wav")).write_bytes(b"not audio")
    result, _ = check_in_browser(broken / "index.html")
    assert any("sample_00.png" in error for error in result["errors"])
    assert any(a["error"] is not None for a in result["audios"] if a["src"].endswith("sample_01.wav"))
