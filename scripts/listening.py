"""Blind A/B listening tests: export randomised, anonymised pairs; score the listeners' answers.

``export_listening_test`` writes ``index.html`` (two players per pair and a preference form; the answers are
saved as a JSON file through the browser's downloads), the audio files named only by pair and position, and a
hidden key file ``.key.json`` saying which set played first in each pair, with the tokens and key of every
melody played. ``score_listening_test`` un-blinds one or more answer files, reports each listener's counts,
and tests the preference twice: a sign test over the listeners' majorities (each listener counts once, ties
dropped) — the test that respects listeners — and, beside it, a binomial test of all answers pooled, which
treats every answer as independent (no preference is left out of both). ``listening_preferences`` turns the
same answers into preference pairs (``preferences.jsonl``) for ``notetune reward fit``.
"""

from __future__ import annotations

import datetime
import html
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from notetune.agents.sources import SampleSource
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.export import write_wav
from notetune.rewards.keys import Key
from notetune.rewards.preferences import DEFAULT_KEY, PreferencePair

KEY_FILE = ".key.json"
CHOICES = ("1", "2", "none")
"""Answers per pair: the first clip sounds better, the second, or no preference."""


@dataclass(frozen=True)
class ListeningPair:
    """One anonymised pair: which set plays first (``"A"`` or ``"B"``) and which melodies."""

    pair: str
    first: str
    second: str
    first_melody: int
    second_melody: int


def export_listening_test(
    a: SampleSource,
    b: SampleSource,
    out: str | Path,
    pairs: int = 20,
    seed: int = 0,
) -> Path:
    """Write a blind A/B test of ``pairs`` pairs (melody ``i`` of A against melody ``i`` of B) into ``out``.

    Pair order and which set plays first are randomised with ``seed``. Returns the page's path.
    """
    if pairs < 1:
        raise UserInputError(f"a listening test needs at least 1 pair, got {pairs}")
    for source in (a, b):
        if len(source.tokens) < pairs:
            raise UserInputError(f"{source.label} has {len(source.tokens)} melodies; {pairs} pairs need {pairs}")
    out = Path(out)
    if (out / KEY_FILE).exists():
        raise UserInputError(f"{out} already holds a listening test; choose another --out")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    melodies = rng.permutation(pairs)
    a_first = rng.random(pairs) < 0.5
    test_id = uuid.uuid4().hex[:12]
    sets = {"A": a, "B": b}
    plan, renderers = [], set()
    for position, (melody, first_is_a) in enumerate(zip(melodies.tolist(), a_first.tolist(), strict=True)):
        first, second = ("A", "B") if first_is_a else ("B", "A")
        pair = ListeningPair(f"pair-{position + 1:02d}", first, second, melody, melody)
        for slot, name in (("1", first), ("2", second)):
            source = sets[name]
            renderers.add(write_wav(source.tokens[melody], out / "audio" / f"{pair.pair}-{slot}.wav", source.vocab))
        plan.append(pair)
    key = {
        "test_id": test_id,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "seed": seed,
        "sets": {
            name: {"label": s.label, "source": s.path, "key": s.key, "settings": s.settings} for name, s in sets.items()
        },
        "pairs": [asdict(p) for p in plan],
        "tokens": {name: s.tokens[:pairs].tolist() for name, s in sets.items()},
        "audio_renderer": sorted(renderers),
    }
    (out / KEY_FILE).write_text(json.dumps(key, indent=2) + "\n")
    page = out / "index.html"
    page.write_text(render_listening_page(test_id, [p.pair for p in plan]), encoding="utf-8")
    return page


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Listening test</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 760px; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
fieldset.pair { border: 1px solid #ddd; border-radius: 6px; margin: 1rem 0; padding: 0.6rem 1rem; }
.clip { display: flex; align-items: center; gap: 0.6rem; margin: 0.3rem 0; }
.clip audio { flex: 1; }
.choices label { margin-right: 1.2rem; }
#save { display: inline-block; padding: 0.5rem 1rem; background: #1a5fb4; color: white; border-radius: 4px;
        text-decoration: none; }
</style></head><body>
<h1>Which melody sounds better?</h1>
<p>Each pair plays two short melodies, <b>1</b> and <b>2</b>, in random order. Listen to both and choose
the one you prefer (or no preference). When you are done, press <i>Save answers</i>: your browser downloads
a small JSON file; send it to whoever gave you this test. Test <code>$TEST_ID_TEXT</code>.</p>
<p><label>Your name or initials: <input id="listener" type="text" required></label>
<span id="name-needed" hidden>Please type your name or initials before saving: answers are counted per
listener.</span></p>
<form id="answers" onsubmit="return false">
$PAIRS_HTML
</form>
<p><span id="count"></span> · <a id="save" href="#" onclick="saveAnswers()">Save answers</a></p>
<script>
const TEST_ID = $TEST_ID_JSON;
const PAIRS = $PAIRS_JSON;
function answers() {
  const chosen = {};
  for (const pair of PAIRS) {
    const checked = document.querySelector('input[name="' + pair + '"]:checked');
    if (checked) chosen[pair] = checked.value;
  }
  return chosen;
}
function updateCount() {
  const answered = Object.keys(answers()).length;
  document.getElementById("count").textContent = answered + " of " + PAIRS.length + " answered";
}
function saveAnswers() {  // not "download": inside onclick that name is the link's own attribute
  const link = document.getElementById("save");
  const listener = document.getElementById("listener").value.trim();
  document.getElementById("name-needed").hidden = listener !== "";
  if (listener === "") {  // answers are counted per listener: no file without a name
    link.href = "#";
    link.removeAttribute("download");
    document.getElementById("listener").focus();
    return;
  }
  const data = {test_id: TEST_ID, listener: listener, saved: new Date().toISOString(), answers: answers()};
  const blob = new Blob([JSON.stringify(data, null, 2)], {type: "application/json"});
  link.href = URL.createObjectURL(blob);
  link.download = "answers-" + TEST_ID + ".json";
}
document.addEventListener("change", updateCount);
updateCount();
</script>
</body></html>
"""
"""The listening page; the $NAMES are filled in by :func:`render_listening_page`."""


def render_listening_page(test_id: str, pair_ids: list[str]) -> str:
    """The form: two unnamed players per pair, three choices, and a button that downloads the answers."""
    e = html.escape
    rows = []
    for number, pair in enumerate(pair_ids, 1):
        choices = "".join(
            f'<label><input type="radio" name="{e(pair)}" value="{value}"> {text}</label>'
            for value, text in (("1", "1 sounds better"), ("2", "2 sounds better"), ("none", "no preference"))
        )
        rows.append(
            f'<fieldset class="pair"><legend>Pair {number}</legend>'
            + "".join(
                f'<div class="clip"><b>{slot}</b> '
                f'<audio controls preload="auto" src="audio/{e(pair)}-{slot}.wav"></audio></div>'
                for slot in ("1", "2")
            )
            + f'<div class="choices">{choices}</div></fieldset>'
        )
    page = PAGE.replace("$TEST_ID_TEXT", e(test_id)).replace("$PAIRS_HTML", "\n".join(rows))
    return page.replace("$TEST_ID_JSON", json.dumps(test_id)).replace("$PAIRS_JSON", json.dumps(pair_ids))


@dataclass
class ListenerAnswers:
    """One listener's un-blinded answers (all of their answer files pooled)."""

    listener: str
    """The name the page asked for; an older answer file without one is its own listener, named by its path."""
    prefer_a: int = 0
    prefer_b: int = 0
    no_preference: int = 0
    unanswered: int = 0

    @property
    def majority(self) -> str:
        """ "A" or "B", the set this listener preferred more often; "tie" when neither was."""
        return "A" if self.prefer_a > self.prefer_b else "B" if self.prefer_b > self.prefer_a else "tie"


@dataclass
class ListeningResult:
    """Un-blinded preferences: per listener, and pooled over all answer files."""

    test_id: str
    labels: dict[str, str]
    """"A"/"B" → the sets' labels."""
    prefer_a: int
    prefer_b: int
    no_preference: int
    unanswered: int
    listeners: int
    p_value: float
    """Pooled: two-sided binomial test of prefer_a against prefer_a + prefer_b at 1/2, treating every answer as an
    independent trial (NaN without preferences). Answers of one listener are not independent: read it beside
    :attr:`sign_test_p_value`."""
    per_listener: list[ListenerAnswers] = field(default_factory=list)
    sign_test_p_value: float = float("nan")
    """Sign test over listeners: two-sided binomial test at 1/2 of the listeners whose majority is A among those
    with a majority (ties dropped); each listener counts once, however many pairs they answered."""

    @property
    def preference_for_a(self) -> float:
        decided = self.prefer_a + self.prefer_b
        return self.prefer_a / decided if decided else float("nan")

    @property
    def listeners_preferring(self) -> dict[str, int]:
        """Listeners by majority: {"A": ..., "B": ..., "tie": ...}."""
        majorities = [listener.majority for listener in self.per_listener]
        return {side: majorities.count(side) for side in ("A", "B", "tie")}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preference_for_a"] = self.preference_for_a
        data["listeners_preferring"] = self.listeners_preferring
        for listener, answers in zip(data["per_listener"], self.per_listener, strict=True):
            listener["majority"] = answers.majority
        data["tests"] = {
            "sign_test_p_value": "two-sided sign test over listeners' majorities (ties dropped)",
            "p_value": "two-sided binomial test of all answers pooled, treating answers as independent",
        }
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in data.items()}

    def summary(self) -> str:
        a, b = self.labels["A"], self.labels["B"]
        decided = self.prefer_a + self.prefer_b
        share = f"{100 * self.preference_for_a:.1f}%" if decided else "n/a"
        by_majority = self.listeners_preferring
        lines = [
            f"listening test {self.test_id}: {self.listeners} listener(s)",
            "  per listener: prefer A / prefer B / no preference / unanswered → majority",
            *(
                f"    {x.listener}: {x.prefer_a} / {x.prefer_b} / {x.no_preference} / {x.unanswered} → {x.majority}"
                for x in self.per_listener
            ),
            f"  prefer A ({a}): {self.prefer_a}\n  prefer B ({b}): {self.prefer_b}",
            f"  no preference: {self.no_preference}\n  unanswered: {self.unanswered}",
            f"  A preferred in {share} of decided pairs",
            f"  sign test over listeners' majorities (each listener counts once, ties dropped): "
            f"{by_majority['A']} prefer A, {by_majority['B']} prefer B, {by_majority['tie']} tied; "
            f"two-sided p = {_format_p(self.sign_test_p_value)}",
            f"  pooled binomial test, treating every answer as independent (it is not when one listener answers "
            f"many pairs): two-sided p = {_format_p(self.p_value)}",
        ]
        return "\n".join(lines)


def _format_p(p_value: float) -> str:
    return "n/a" if not np.isfinite(p_value) else f"{p_value:.4f}"


def _two_sided_binomial(successes: int, trials: int) -> float:
    if not trials:
        return float("nan")
    from scipy.stats import binomtest

    return float(binomtest(successes, trials, 0.5, alternative="two-sided").pvalue)


def _read_answers(path: str | Path) -> dict:
    """One answer file as the page saves it: a JSON object with ``test_id``, ``listener`` and ``answers``."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"answer file {path} not found; give the answers-<test id>.json files the page saved")
    try:
        answers = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{path} is not an answer file (not JSON: {error}); give a file the page saved") from None
    if not isinstance(answers, dict) or not isinstance(answers.get("answers", {}), dict):
        raise UserInputError(f"{path} is not an answer file (expected an object with 'test_id' and 'answers')")
    return answers


def _load_key(directory: Path) -> dict:
    key_path = directory / KEY_FILE
    if not key_path.is_file():
        raise UserInputError(
            f"{directory} holds no listening test key ({KEY_FILE}); give the folder `notetune listen export` wrote"
        )
    return json.loads(key_path.read_text())


def _unblinded_answers(key: dict, directory: Path, answer_files: list[str | Path]):
    """(listener, pair, preferred) for every pair of every answer file, ``preferred`` being "A", "B", "none"
    (no preference) or None (unanswered). Files that give the same listener name are one listener's; a file
    without a name is one listener, named by its path."""
    pairs = {p["pair"]: p for p in key["pairs"]}
    for answer_file in answer_files:
        answers = _read_answers(answer_file)
        if answers.get("test_id") != key["test_id"]:
            raise UserInputError(
                f"{answer_file} answers test {answers.get('test_id')!r}, but {directory} holds test {key['test_id']!r}"
            )
        given = answers.get("answers", {})
        unknown = sorted(set(given) - set(pairs))
        if unknown:
            raise UserInputError(f"{answer_file} answers unknown pairs {unknown}")
        name = str(answers.get("listener") or "").strip() or f"{answer_file} (no name)"
        for pair_id, pair in pairs.items():
            choice = given.get(pair_id)
            if choice not in (None, *CHOICES):
                raise UserInputError(f"{answer_file}: answer {choice!r} for {pair_id} is not one of {CHOICES}")
            preferred = {"1": pair["first"], "2": pair["second"]}.get(choice, choice)
            yield name, pair, preferred


def score_listening_test(directory: str | Path, answer_files: list[str | Path]) -> ListeningResult:
    """Un-blind the answer files of the test in ``directory``; count per listener and test the preference.

    Files that give the same listener name are one listener's; a file without a name is one listener.
    """
    directory = Path(directory)
    key = _load_key(directory)
    listeners: dict[str, ListenerAnswers] = {}
    for name, _pair, preferred in _unblinded_answers(key, directory, answer_files):
        listener = listeners.setdefault(name, ListenerAnswers(name))
        if preferred is None:
            listener.unanswered += 1
        elif preferred == "none":
            listener.no_preference += 1
        elif preferred == "A":
            listener.prefer_a += 1
        else:
            listener.prefer_b += 1
    per_listener = list(listeners.values())
    totals = {
        name: sum(getattr(x, name) for x in per_listener)
        for name in ("prefer_a", "prefer_b", "no_preference", "unanswered")
    }
    majorities = [x.majority for x in per_listener]
    labels = {name: info["label"] for name, info in key["sets"].items()}
    return ListeningResult(
        key["test_id"],
        labels,
        **totals,
        listeners=len(per_listener),
        p_value=_two_sided_binomial(totals["prefer_a"], totals["prefer_a"] + totals["prefer_b"]),
        per_listener=per_listener,
        sign_test_p_value=_two_sided_binomial(majorities.count("A"), majorities.count("A") + majorities.count("B")),
    )


def listening_preferences(directory: str | Path, answer_files: list[str | Path]) -> list[PreferencePair]:
    """The answers as preference pairs, one per answered pair and listener: ``a`` = the melody of set A,
    ``b`` = that of set B, winner ``a``/``b`` or ``tie`` for no preference (unanswered pairs are left out),
    ``listener`` from the answer file and ``source`` naming the test and its sets."""
    directory = Path(directory)
    key = _load_key(directory)
    if "tokens" not in key:
        raise UserInputError(
            f"{directory / KEY_FILE} does not keep the melodies it played (a test from an older notetune); "
            "export the test again with `notetune listen export` to collect preferences from it"
        )
    tokens = {name: np.asarray(melodies, dtype=np.int64) for name, melodies in key["tokens"].items()}
    if tokens["A"].shape[1:] != tokens["B"].shape[1:]:
        raise UserInputError(
            f"sets A and B of {directory} have melodies of {tokens['A'].shape[1]} and {tokens['B'].shape[1]} "
            "steps; a preference pair needs two melodies of one length"
        )
    keys = {str(Key.parse(info["key"])) for info in key["sets"].values() if info.get("key")}
    if len(keys) > 1:
        raise UserInputError(
            f"sets A and B of {directory} are in different keys ({', '.join(sorted(keys))}); a preference pair "
            "has one key: export a test of two sets in one key"
        )
    pair_key = Key.parse(keys.pop() if keys else DEFAULT_KEY)
    labels = {name: info["label"] for name, info in key["sets"].items()}
    source = f"listening test {key['test_id']}: A {labels['A']}, B {labels['B']}"
    preferences = []
    for listener, pair, preferred in _unblinded_answers(key, directory, answer_files):
        if preferred is None:
            continue
        melody = {pair["first"]: pair["first_melody"], pair["second"]: pair["second_melody"]}
        preferences.append(
            PreferencePair(
                a=tokens["A"][melody["A"]],
                b=tokens["B"][melody["B"]],
                winner={"A": "a", "B": "b", "none": "tie"}[preferred],
                key=pair_key,
                listener=listener,
                source=source,
                extra={"pair": pair["pair"]},
            )
        )
    return preferences
