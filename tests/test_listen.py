"""Blind listening tests: the export hides which set is which; scoring un-blinds it correctly."""

import html
import json
import re

import pytest
from browser import chromium_binary, run_chromium
from notetune.scripts.cli import main
from notetune.scripts.listening import KEY_FILE, score_listening_test


def answers_preferring(test_dir, preferred_set, choice_for_others="none", listener="test"):
    """The answers a listener who always prefers ``preferred_set`` ("A" or "B") would save."""
    key = json.loads((test_dir / KEY_FILE).read_text())
    answers = {}
    for pair in key["pairs"]:
        if preferred_set == pair["first"]:
            answers[pair["pair"]] = "1"
        elif preferred_set == pair["second"]:
            answers[pair["pair"]] = "2"
        else:
            answers[pair["pair"]] = choice_for_others
    return {"test_id": key["test_id"], "listener": listener, "answers": answers}


def test_export_is_anonymous_and_randomised(listening_test):
    page = (listening_test / "index.html").read_text()
    assert "tuned model" not in page and "human corpus" not in page and "corpus.npz" not in page
    assert len(re.findall(r"<audio ", page)) == 16 and len(re.findall(r'type="radio"', page)) == 24
    wavs = sorted(p.name for p in (listening_test / "audio").glob("*.wav"))
    assert wavs[:2] == ["pair-01-1.wav", "pair-01-2.wav"] and len(wavs) == 16
    key = json.loads((listening_test / KEY_FILE).read_text())
    firsts = [pair["first"] for pair in key["pairs"]]
    assert set(firsts) == {"A", "B"}, "which set plays first is randomised"
    assert sorted(pair["first_melody"] for pair in key["pairs"]) == list(range(8))
    assert key["sets"]["A"]["label"] == "tuned model" and len(key["tokens"]["A"]) == 8


def test_scoring_unblinds_preferences(listening_test, tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(answers_preferring(listening_test, "A")))
    result = score_listening_test(listening_test, [answers])
    assert (result.prefer_a, result.prefer_b, result.no_preference, result.unanswered) == (8, 0, 0, 0)
    assert result.labels == {"A": "tuned model", "B": "human corpus"}
    assert result.p_value == pytest.approx(2 / 2**8)  # two-sided binomial, 8 of 8
    other = tmp_path / "other.json"
    other.write_text(json.dumps(answers_preferring(listening_test, "B", listener="other")))
    pooled = score_listening_test(listening_test, [answers, other])
    assert (pooled.prefer_a, pooled.prefer_b, pooled.listeners) == (8, 8, 2) and pooled.p_value == 1.0
    partial = answers_preferring(listening_test, "B")
    partial["answers"] = dict(list(partial["answers"].items())[:3]) | {"pair-08": "none"}
    other.write_text(json.dumps(partial))
    result = score_listening_test(listening_test, [other])
    assert result.no_preference + result.unanswered == 8 - result.prefer_b


def test_answers_for_another_test_are_refused(listening_test, tmp_path):
    answers = answers_preferring(listening_test, "A") | {"test_id": "0123456789ab"}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    with pytest.raises(ValueError, match="answers test '0123456789ab'"):
        score_listening_test(listening_test, [path])


def test_listen_commands_round_trip(tmp_path, tiny_prior_dir, tiny_corpus_path, capsys):
    out = tmp_path / "blind"
    assert main(["listen", "export", tiny_prior_dir, tiny_corpus_path, "--pairs", "4", "--out", str(out)]) == 0
    assert "do not share it" in capsys.readouterr().out
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(answers_preferring(out, "B")))
    assert main(["listen", "score", str(out), str(answers), "--json", str(tmp_path / "result.json")]) == 0
    printed = capsys.readouterr().out
    assert "prefer B (corpus): 4" in printed and "p = 0.1250" in printed
    assert json.loads((tmp_path / "result.json").read_text())["prefer_b"] == 4
    assert main(["listen", "export", tiny_prior_dir, tiny_corpus_path, "--pairs", "4", "--out", str(out)]) == 2
    assert "already holds a listening test" in capsys.readouterr().err


# Plays the listener: ticks "1" everywhere, presses Save without a name (refused), types a name, presses Save
# again, and reads the downloaded Blob back into the page.
LISTENER_SCRIPT = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll('input[type="radio"][value="1"]').forEach(function (r) { r.click(); });
  var link = document.getElementById("save");
  // The page's own onclick runs; the default action (a real download) would stall headless Chromium.
  link.addEventListener("click", function (event) { event.preventDefault(); });
  link.click();
  var refused = {download: link.hasAttribute("download"),
                 asked: !document.getElementById("name-needed").hidden};
  document.getElementById("listener").value = "Ada L.";
  link.click();
  fetch(link.href).then(function (r) { return r.text(); }).then(function (text) {
    var pre = document.createElement("pre");
    pre.id = "saved";
    pre.setAttribute("data-file", link.download);
    pre.setAttribute("data-refused", JSON.stringify(refused).replace(/"/g, "'"));
    pre.textContent = text;
    document.body.appendChild(pre);
  });
});
</script>"""


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install chromium)")
def test_answers_saved_by_the_page_in_chromium_score(listening_test, tmp_path):
    page = listening_test / "listener.html"
    page.write_text((listening_test / "index.html").read_text().replace("</body>", LISTENER_SCRIPT + "</body>"))
    done = run_chromium(
        "--virtual-time-budget=10000",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.as_uri(),
        timeout=60,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged errors"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged errors"
    match = re.search(r'<pre id="saved" data-file="([^"]+)" data-refused="([^"]+)">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stderr[-2000:]
    # Without a name the page offered no file and asked for one.
    assert json.loads(match.group(2).replace("'", '"')) == {"download": False, "asked": True}
    key = json.loads((listening_test / KEY_FILE).read_text())
    assert match.group(1) == f"answers-{key['test_id']}.json"
    saved = tmp_path / match.group(1)
    saved.write_text(html.unescape(match.group(3)))
    assert json.loads(saved.read_text())["listener"] == "Ada L."
    result = score_listening_test(listening_test, [saved])
    first_is_a = sum(pair["first"] == "A" for pair in key["pairs"])
    assert (result.prefer_a, result.prefer_b) == (first_is_a, 8 - first_is_a)  # "1" is whichever played first
    assert [x.listener for x in result.per_listener] == ["Ada L."]
