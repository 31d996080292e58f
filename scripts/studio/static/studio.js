// notetune studio: one melody on a piano roll, regenerated around its locked notes by the server's models.
// Tokens as in notetune: 0 rest, 1 hold, 2.. pitches (min_pitch..max_pitch). Every edit is saved to the server.
"use strict";

const $ = (id) => document.getElementById(id);
const REST = 0;
const HOLD = 1;
const NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"];
const FIGURES = [
  ["log_prior", "log p under the prior (nats)"],
  ["log_prior_per_token", "log p per token"],
  ["notes", "notes"],
  ["excessively_repeated", "excessively repeated"],
  ["not_in_key", "not in key"],
  ["starts_with_tonic", "starts with tonic"],
  ["leaps_resolved", "leaps resolved"],
  ["unique_max", "unique maximum"],
  ["unique_min", "unique minimum"],
  ["in_motif", "in motif"],
  ["in_repeated_motif", "in repeated motif"],
  ["autocorrelation_lag1", "autocorrelation lag 1"],
  ["autocorrelation_lag2", "autocorrelation lag 2"],
  ["autocorrelation_lag3", "autocorrelation lag 3"],
  ["hold_share", "hold share"],
  ["rest_share", "rest share"],
  ["repeated_onsets", "repeated onsets"],
];
const ROW_HEIGHT = 12;

const studio = {
  info: null, // GET /api/models
  melody: null, // {id, title, tokens, key, meter, locked: Set of steps, model}
  undo: [],
  redo: [],
  saving: Promise.resolve(),
  version: 0,
  cell: 24,
  audioUrl: null,
  playing: null, // tokens being played
  ab: null,
  abCount: 0,
};
window.studio = studio; // for the console (and the browser test)

// ------------------------------------------------------------------------------------------ tokens and notes

function tokensToNotes(tokens) {
  const notes = [];
  let current = null;
  tokens.forEach((token, step) => {
    if (token === HOLD) return;
    if (current) notes.push({ start: current.start, end: step, token: current.token });
    current = token === REST ? null : { start: step, token };
  });
  if (current) notes.push({ start: current.start, end: tokens.length, token: current.token });
  return notes;
}

function notesToTokens(notes, length) {
  // The canonical spelling: silence is one rest followed by holds (as notetune's encoding writes it).
  const tokens = new Array(length).fill(HOLD);
  if (length) tokens[0] = REST;
  const ordered = notes.filter((n) => n.start < length).sort((a, b) => a.start - b.start);
  ordered.forEach((note, i) => {
    const next = i + 1 < ordered.length ? ordered[i + 1].start : length;
    const end = Math.min(Math.max(note.end, note.start + 1), next, length);
    tokens[note.start] = note.token;
    for (let s = note.start + 1; s < end; s++) tokens[s] = HOLD;
    if (end < next && end < length) tokens[end] = REST;
  });
  return tokens;
}

const canonical = (tokens) => notesToTokens(tokensToNotes(tokens), tokens.length);
const vocab = () => studio.info.vocabulary;
const pitchOf = (token) => token - 2 + vocab().min_pitch;
const tokenOf = (pitch) => pitch - vocab().min_pitch + 2;
const pitchName = (pitch) => NAMES[pitch % 12] + (Math.floor(pitch / 12) - 1);
const meter = () => studio.info.meters[studio.melody.meter];
const length = () => studio.melody.tokens.length;

// ---------------------------------------------------------------------------------------------- the server

class ApiError extends Error {}

async function api(method, path, body, raw) {
  const options = { method, headers: {} };
  if (raw !== undefined) {
    options.body = raw;
    options.headers["Content-Type"] = "audio/midi";
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch (_) {
      /* not JSON */
    }
    throw new ApiError(message);
  }
  const type = response.headers.get("Content-Type") || "";
  return type.includes("application/json") ? response.json() : response.blob();
}

function status(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function attempt(what, action) {
  try {
    return await action();
  } catch (error) {
    status(`${what}: ${error.message}`, true);
    if (!(error instanceof ApiError)) console.warn(error);
    return undefined;
  }
}

// --------------------------------------------------------------------------------------- state and history

function snapshot() {
  const m = studio.melody;
  return { tokens: m.tokens.slice(), locked: [...m.locked], key: m.key, meter: m.meter };
}

function restore(state) {
  const m = studio.melody;
  m.tokens = state.tokens.slice();
  m.locked = new Set(state.locked);
  m.key = state.key;
  m.meter = state.meter;
}

function change(action, edit) {
  const before = snapshot();
  edit(studio.melody);
  studio.undo.push(before);
  studio.redo = [];
  commit(action);
}

function commit(action) {
  syncControls();
  render();
  save(action);
  scoreSoon();
}

function undoRedo(direction) {
  const [from, to] = direction < 0 ? [studio.undo, studio.redo] : [studio.redo, studio.undo];
  if (!from.length) return;
  to.push(snapshot());
  restore(from.pop());
  commit(direction < 0 ? "undo" : "redo");
}

function save(action) {
  const m = studio.melody;
  const body = {
    tokens: m.tokens,
    key: m.key,
    meter: m.meter,
    locked: [...m.locked].sort((a, b) => a - b),
    title: m.title,
    model: m.model,
    action,
  };
  // One save at a time, in order: the server's history is the page's history.
  studio.saving = studio.saving.then(() =>
    attempt("save", async () => {
      const saved = await api("PUT", `/api/melodies/${m.id}`, body);
      studio.version = saved.version;
      if (location.hash !== `#${m.id}`) history.replaceState(null, "", `#${m.id}`);
      status(`saved “${m.title || m.id}”, version ${saved.version} (${action})`);
      await refreshList();
    }),
  );
  return studio.saving;
}

function newId() {
  const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return `m${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

function emptyMelody(bars = 2, meterName = "4/4", key = "C major") {
  const steps = bars * studio.info.meters[meterName].steps_per_bar;
  return {
    id: newId(),
    title: "",
    tokens: notesToTokens([], steps),
    key,
    meter: meterName,
    locked: new Set(),
    model: $("model").value || studio.info.models[0].name,
  };
}

function open(melody) {
  studio.melody = melody;
  studio.undo = [];
  studio.redo = [];
  $("variations-panel").hidden = true;
  syncControls();
  render();
  scoreSoon();
  markCurrent();
}

// ------------------------------------------------------------------------------------------------ controls

function fillSelect(select, values, labels) {
  select.innerHTML = "";
  values.forEach((value, i) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = labels ? labels[i] : value;
    select.appendChild(option);
  });
}

function fillBars(select, meterName) {
  const bars = Array.from({ length: studio.info.max_bars }, (_, i) => i + 1);
  const value = select.value;
  fillSelect(select, bars, bars.map((b) => `${b} (${b * studio.info.meters[meterName].steps_per_bar} steps)`));
  if (value) select.value = value;
}

function syncControls() {
  const m = studio.melody;
  $("title").value = m.title;
  $("key").value = m.key;
  $("meter").value = m.meter;
  fillBars($("bars"), m.meter);
  $("bars").value = String(m.tokens.length / meter().steps_per_bar);
  if (studio.info.models.some((x) => x.name === m.model)) $("model").value = m.model;
  $("undo").disabled = !studio.undo.length;
  $("redo").disabled = !studio.redo.length;
}

function resize(bars, meterName) {
  change(`${bars} bars of ${meterName}`, (m) => {
    const steps = bars * studio.info.meters[meterName].steps_per_bar;
    const notes = tokensToNotes(m.tokens).filter((n) => n.start < steps);
    m.tokens = notesToTokens(notes.map((n) => ({ ...n, end: Math.min(n.end, steps) })), steps);
    m.locked = new Set([...m.locked].filter((s) => s < steps));
    m.meter = meterName;
  });
}

function transpose(semitones) {
  const notes = tokensToNotes(studio.melody.tokens);
  const pitches = notes.map((n) => pitchOf(n.token) + semitones);
  if (pitches.some((p) => p < vocab().min_pitch || p > vocab().max_pitch)) {
    status(`cannot transpose by ${semitones}: a note would leave ${vocab().min_pitch}..${vocab().max_pitch}`, true);
    return;
  }
  change(`transpose ${semitones > 0 ? "+" : ""}${semitones}`, (m) => {
    m.tokens = m.tokens.map((t) => (t >= 2 ? t + semitones : t));
    if (Math.abs(semitones) % 12) m.key = shiftKey(m.key, semitones);
  });
}

function shiftKey(key, semitones) {
  const keys = studio.info.keys;
  const [tonic, mode] = key.split(" ");
  const index = keys.findIndex((k) => k.endsWith(mode) && k.split(" ")[0] === tonic);
  if (index < 0) return key;
  const base = mode === "major" ? 0 : 12;
  return keys[base + ((((index - base + semitones) % 12) + 12) % 12)];
}

// ---------------------------------------------------------------------------------------------- piano roll

function layout() {
  const available = $("roll-scroll").clientWidth || 900;
  studio.cell = Math.max(12, Math.min(40, Math.floor(available / length())));
}

function render() {
  layout();
  const m = studio.melody;
  const rows = vocab().max_pitch - vocab().min_pitch + 1;
  const width = length() * studio.cell;
  const height = rows * ROW_HEIGHT;
  const roll = $("roll");
  roll.style.width = `${width}px`;
  roll.style.height = `${height}px`;
  drawGrid(width, height, rows);
  roll.querySelectorAll(".note, .lock-band").forEach((el) => el.remove());
  lockedRuns().forEach(([start, end]) => {
    const band = document.createElement("div");
    band.className = "lock-band";
    band.style.left = `${start * studio.cell}px`;
    band.style.width = `${(end - start) * studio.cell}px`;
    roll.appendChild(band);
  });
  tokensToNotes(m.tokens).forEach((note) => {
    const el = document.createElement("div");
    const pitch = pitchOf(note.token);
    el.className = "note" + (isLocked(note) ? " locked" : "");
    el.dataset.start = note.start;
    el.dataset.end = note.end;
    el.dataset.pitch = pitch;
    el.title = `${pitchName(pitch)} · steps ${note.start}–${note.end - 1}${isLocked(note) ? " · locked" : ""}`;
    el.style.left = `${note.start * studio.cell + 1}px`;
    el.style.width = `${(note.end - note.start) * studio.cell - 2}px`;
    el.style.top = `${(vocab().max_pitch - pitch) * ROW_HEIGHT + 1}px`;
    el.style.height = `${ROW_HEIGHT - 2}px`;
    const handle = document.createElement("div");
    handle.className = "handle";
    el.appendChild(handle);
    roll.appendChild(el);
  });
  renderKeys(rows);
  renderBars();
}

function drawGrid(width, height, rows) {
  const canvas = $("grid");
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  g.fillStyle = "#ffffff";
  g.fillRect(0, 0, width, height);
  for (let r = 0; r < rows; r++) {
    const pitch = vocab().max_pitch - r;
    if ([1, 3, 6, 8, 10].includes(pitch % 12)) {
      g.fillStyle = "#f1f2f6";
      g.fillRect(0, r * ROW_HEIGHT, width, ROW_HEIGHT);
    }
    if (pitch % 12 === 0) {
      g.fillStyle = "#d9dde5";
      g.fillRect(0, (r + 1) * ROW_HEIGHT - 1, width, 1);
    }
  }
  const { steps_per_bar: bar, steps_per_beat: beat } = meter();
  for (let s = 0; s <= length(); s++) {
    g.fillStyle = s % bar === 0 ? "#9aa3b2" : s % beat === 0 ? "#d3d7df" : "#eceef2";
    g.fillRect(s * studio.cell - (s === length() ? 1 : 0), 0, 1, height);
  }
}

function renderKeys(rows) {
  const keys = $("keys");
  keys.innerHTML = "";
  for (let r = 0; r < rows; r++) {
    const pitch = vocab().max_pitch - r;
    const el = document.createElement("div");
    el.style.height = `${ROW_HEIGHT}px`;
    el.style.lineHeight = `${ROW_HEIGHT}px`;
    el.className = pitch % 12 === 0 ? "c" : [1, 3, 6, 8, 10].includes(pitch % 12) ? "black" : "";
    el.textContent = pitch % 12 === 0 ? pitchName(pitch) : "";
    keys.appendChild(el);
  }
}

function renderBars() {
  const header = $("bar-header");
  header.innerHTML = "";
  header.style.width = `${length() * studio.cell}px`;
  const bar = meter().steps_per_bar;
  for (let b = 0; b < length() / bar; b++) {
    const el = document.createElement("div");
    el.dataset.bar = b;
    el.style.left = `${b * bar * studio.cell}px`;
    el.style.width = `${bar * studio.cell}px`;
    el.textContent = String(b + 1);
    const steps = range(b * bar, (b + 1) * bar);
    el.classList.toggle("locked", steps.every((s) => studio.melody.locked.has(s)));
    header.appendChild(el);
  }
}

const range = (start, end) => Array.from({ length: end - start }, (_, i) => start + i);
const isLocked = (note) => range(note.start, note.end).every((s) => studio.melody.locked.has(s));
const touchesLock = (start, end) => range(start, end).some((s) => studio.melody.locked.has(s));

function lockedRuns() {
  const runs = [];
  let start = null;
  for (let s = 0; s <= length(); s++) {
    const locked = s < length() && studio.melody.locked.has(s);
    if (locked && start === null) start = s;
    if (!locked && start !== null) {
      runs.push([start, s]);
      start = null;
    }
  }
  return runs;
}

function cellAt(event) {
  const rect = $("roll").getBoundingClientRect();
  const step = Math.floor((event.clientX - rect.left) / studio.cell);
  const pitch = vocab().max_pitch - Math.floor((event.clientY - rect.top) / ROW_HEIGHT);
  return { step: Math.max(0, Math.min(length() - 1, step)), pitch, x: event.clientX - rect.left };
}

const tool = () => document.querySelector('input[name="tool"]:checked').value;

function noteAt(step) {
  return tokensToNotes(studio.melody.tokens).find((n) => n.start <= step && step < n.end);
}

function addNote(step, pitch, steps) {
  // Monophonic: a note sounding at `step` is cut there; the new one ends at the next onset at the latest.
  const notes = tokensToNotes(studio.melody.tokens).filter((n) => n.start !== step);
  notes.forEach((n) => {
    if (n.start < step && n.end > step) n.end = step;
  });
  const next = Math.min(length(), ...notes.filter((n) => n.start > step).map((n) => n.start));
  notes.push({ start: step, end: Math.min(step + steps, next), token: tokenOf(pitch) });
  return notesToTokens(notes, length());
}

function onRollDown(event) {
  if (event.button !== 0) return;
  event.preventDefault();
  const { step, pitch } = cellAt(event);
  const target = event.target.closest(".note");
  if (tool() === "lock") {
    const note = target ? noteAt(Number(target.dataset.start)) : null;
    if (note) toggleLock(note.start, note.end, `lock ${pitchName(pitchOf(note.token))}`);
    return;
  }
  if (target && event.target.classList.contains("handle")) {
    const note = noteAt(Number(target.dataset.start));
    if (touchesLock(note.start, note.end)) return status("that note is locked; unlock it first (Lock tool)", true);
    return startDrag(note, target, "change length");
  }
  if (target) {
    const note = noteAt(Number(target.dataset.start));
    if (touchesLock(note.start, note.end)) return status("that note is locked; unlock it first (Lock tool)", true);
    return change(`remove ${pitchName(pitchOf(note.token))}`, (m) => {
      m.tokens = notesToTokens(
        tokensToNotes(m.tokens).filter((n) => n.start !== note.start),
        length(),
      );
    });
  }
  if (pitch < vocab().min_pitch || pitch > vocab().max_pitch) return;
  const steps = Number($("note-length").value);
  if (touchesLock(step, Math.min(step + 1, length()))) return status("that step is locked; unlock it first", true);
  const before = snapshot();
  studio.melody.tokens = addNote(step, pitch, steps);
  render();
  const el = $("roll").querySelector(`.note[data-start="${step}"]`);
  startDrag(noteAt(step), el, `add ${pitchName(pitch)}`, before);
}

function startDrag(note, el, action, before = snapshot()) {
  const limit = Math.min(
    length(),
    ...tokensToNotes(studio.melody.tokens)
      .filter((n) => n.start > note.start)
      .map((n) => n.start),
  );
  const firstLock = range(note.start + 1, limit).find((s) => studio.melody.locked.has(s));
  const end = firstLock === undefined ? limit : firstLock;
  let newEnd = note.end;
  const move = (event) => {
    const { x } = cellAt(event);
    newEnd = Math.max(note.start + 1, Math.min(end, Math.round(x / studio.cell)));
    if (el) el.style.width = `${(newEnd - note.start) * studio.cell - 2}px`;
  };
  const up = () => {
    window.removeEventListener("mousemove", move);
    window.removeEventListener("mouseup", up);
    studio.melody.tokens = notesToTokens(
      tokensToNotes(studio.melody.tokens).map((n) => (n.start === note.start ? { ...n, end: newEnd } : n)),
      length(),
    );
    studio.undo.push(before);
    studio.redo = [];
    commit(action);
  };
  window.addEventListener("mousemove", move);
  window.addEventListener("mouseup", up);
}

function toggleLock(start, end, action) {
  const steps = range(start, end);
  const unlock = steps.every((s) => studio.melody.locked.has(s));
  change(unlock ? action.replace("lock", "unlock") : action, (m) => {
    steps.forEach((s) => (unlock ? m.locked.delete(s) : m.locked.add(s)));
  });
}

function onBarClick(event) {
  const el = event.target.closest("[data-bar]");
  if (!el) return;
  const bar = meter().steps_per_bar;
  const b = Number(el.dataset.bar);
  toggleLock(b * bar, (b + 1) * bar, `lock bar ${b + 1}`);
}

// ------------------------------------------------------------------------------------------------- models

function generateBody(count, modelName, seed, bars) {
  const m = studio.melody;
  const steps = bars ? bars * meter().steps_per_bar : length();
  const locked = bars ? [] : lockTokens(m);
  const constraints = [];
  if ($("in-key").checked) constraints.push(`pitches=${scaleOf(m.key).join(",")}`);
  const body = {
    model: modelName || $("model").value,
    length: steps,
    key: m.key,
    meter: m.meter,
    locked,
    constraints,
    seed: seed === undefined ? Number($("seed").value) || 0 : seed,
    temperature: Number($("temperature").value) || 1,
    count,
  };
  if (!bars && $("primer").value.trim()) body.primer = $("primer").value.trim();
  return body;
}

function lockTokens(m) {
  // A locked stretch that begins in silence is sent as a rest starting there: the page shows silence, so a
  // regenerated note before it must not be held into it.
  return [...m.locked]
    .sort((a, b) => a - b)
    .map((s) => {
      let token = m.tokens[s];
      if (token === HOLD && !m.locked.has(s - 1)) {
        let before = s - 1;
        while (before >= 0 && m.tokens[before] === HOLD) before -= 1;
        if (before < 0 || m.tokens[before] === REST) token = REST;
      }
      return { step: s, token };
    });
}

function scaleOf(key) {
  const [tonic, mode] = key.split(" ");
  const root = NAMES.indexOf(tonic) >= 0 ? NAMES.indexOf(tonic) : ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"].indexOf(tonic);
  const steps = mode === "minor" ? [0, 2, 3, 5, 7, 8, 10] : [0, 2, 4, 5, 7, 9, 11];
  return steps.map((s) => (root + s) % 12);
}

function nextSeed() {
  $("seed").value = String((Number($("seed").value) || 0) + 1);
}

async function regenerate() {
  const body = generateBody(1);
  status("regenerating…");
  const result = await attempt("regenerate", () => api("POST", "/api/generate", body));
  if (!result) return;
  nextSeed();
  change(`regenerate (${body.model}, seed ${body.seed})`, (m) => {
    m.tokens = canonical(result.melodies[0]);
    m.model = body.model;
  });
  $("variations-panel").hidden = true;
}

async function variations() {
  const body = generateBody(4);
  status("writing 4 variations…");
  const result = await attempt("variations", () => api("POST", "/api/generate", body));
  if (!result) return;
  nextSeed();
  const list = $("variation-list");
  list.innerHTML = "";
  result.melodies.forEach((tokens, i) => {
    const card = document.createElement("div");
    card.className = "variation";
    const canvas = document.createElement("canvas");
    canvas.width = 460;
    canvas.height = 110;
    drawMini(canvas, tokens, studio.melody.locked);
    const row = document.createElement("div");
    row.className = "row";
    const info = document.createElement("small");
    info.textContent = `#${i + 1} · log p ${result.log_prior[i].toFixed(1)}`;
    info.title = "log-probability under the prior, renormalised over what the locks allow (nats)";
    const play = button("▶", () => playTokens(tokens));
    const use = button("Use", () => {
      change(`pick variation ${i + 1} (${body.model}, seed ${body.seed})`, (m) => {
        m.tokens = canonical(tokens);
        m.model = body.model;
      });
      $("variations-panel").hidden = true;
    });
    row.append(info, play, use);
    card.append(canvas, row);
    list.appendChild(card);
  });
  $("variations-panel").hidden = false;
  status(`4 variations from ${body.model} (seed ${body.seed}) — play them and pick one`);
}

function button(text, onClick) {
  const el = document.createElement("button");
  el.type = "button";
  el.textContent = text;
  el.addEventListener("click", onClick);
  return el;
}

function drawMini(canvas, tokens, locked) {
  // Zoomed to the melody's own range (at least an octave), so its shape is easy to see.
  const g = canvas.getContext("2d");
  const notes = tokensToNotes(tokens);
  const pitches = notes.map((n) => pitchOf(n.token));
  const middle = pitches.length ? (Math.min(...pitches) + Math.max(...pitches)) / 2 : 66;
  const span = Math.max(14, pitches.length ? Math.max(...pitches) - Math.min(...pitches) + 4 : 14);
  const high = Math.ceil(middle + span / 2);
  const w = canvas.width / tokens.length;
  const h = canvas.height / span;
  g.fillStyle = "#fbfbfd";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#e4e7ee";
  const bar = meter().steps_per_bar;
  for (let s = bar; s < tokens.length; s += bar) g.fillRect(s * w, 0, 1, canvas.height);
  notes.forEach((n) => {
    const lockedNote = locked && range(n.start, n.end).every((s) => locked.has(s));
    g.fillStyle = lockedNote ? "#d9731a" : "#3b73e0";
    g.fillRect(n.start * w + 1, (high - pitchOf(n.token)) * h, Math.max(2, (n.end - n.start) * w - 2), h - 1);
  });
}

// ----------------------------------------------------------------------------------------- figures, audio

let scoreTimer = null;
function scoreSoon() {
  clearTimeout(scoreTimer);
  scoreTimer = setTimeout(score, 120);
}

async function score() {
  const m = studio.melody;
  const figures = await attempt("figures", () =>
    api("POST", "/api/score", { tokens: m.tokens, key: m.key, meter: m.meter }),
  );
  if (!figures) return;
  const values = { ...figures.table1, log_prior: figures.log_prior, log_prior_per_token: figures.log_prior_per_token, notes: figures.notes };
  const table = $("figure-table");
  table.innerHTML = "";
  for (let i = 0; i < FIGURES.length; i += 3) {
    const tr = document.createElement("tr");
    FIGURES.slice(i, i + 3).forEach(([name, label]) => {
      const cell = document.createElement("td");
      cell.textContent = label;
      const value = document.createElement("td");
      value.dataset.figure = name;
      value.textContent = formatFigure(name, values[name]);
      tr.append(cell, value);
    });
    table.appendChild(tr);
  }
  $("figures-note").textContent = `of this melody in ${figures.key}, Table 1 of RL Tuner`;
}

function formatFigure(name, value) {
  if (value === null || value === undefined) return "–";
  if (name === "notes") return String(value);
  if (name.startsWith("log_prior")) return value.toFixed(name === "log_prior" ? 1 : 2);
  if (name.startsWith("autocorrelation")) return Math.abs(value) < 0.005 ? "0.00" : (value > 0 ? "+" : "") + value.toFixed(2);
  return `${(100 * value).toFixed(1)}%`;
}

async function fileOf(format, tokens) {
  const m = studio.melody;
  return api("POST", "/api/export", {
    tokens: tokens || m.tokens,
    format,
    key: m.key,
    meter: m.meter,
    tempo: Number($("tempo").value) || 120,
    metronome: format === "wav" && $("metronome").checked,
    title: m.title,
  });
}

async function playTokens(tokens, onEnded) {
  const audio = $("audio");
  if (!audio.paused && studio.playing === tokens) {
    audio.pause();
    return;
  }
  const blob = await attempt("play", () => fileOf("wav", tokens));
  if (!blob) return;
  if (studio.audioUrl) URL.revokeObjectURL(studio.audioUrl);
  studio.audioUrl = URL.createObjectURL(blob);
  studio.playing = tokens;
  audio.src = studio.audioUrl;
  audio.onended = onEnded || null;
  audio.play().catch((error) => status(`play: ${error.message}`, true));
}

function followPlayhead() {
  const audio = $("audio");
  const head = $("playhead");
  const main = studio.playing === studio.melody.tokens;
  head.hidden = audio.paused || !main;
  if (!head.hidden) {
    const seconds = 60 / (Number($("tempo").value) || 120) / vocab().steps_per_quarter;
    head.style.left = `${(audio.currentTime / seconds) * studio.cell}px`;
  }
  $("play").textContent = !audio.paused && main ? "■ Stop" : "▶ Play";
  requestAnimationFrame(followPlayhead);
}

async function download(format) {
  const blob = await attempt(`export ${format}`, () => fileOf(format));
  if (!blob) return;
  const suffix = { midi: ".mid", musicxml: ".musicxml", wav: ".wav" }[format];
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = (studio.melody.title || studio.melody.id).replace(/[^\w.-]+/g, "_") + suffix;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  status(`exported ${link.download}`);
}

async function importMidi(file) {
  const data = await file.arrayBuffer();
  const melody = await attempt("import", () =>
    api("POST", `/api/import?meter=${encodeURIComponent(studio.melody.meter)}`, undefined, data),
  );
  if (!melody) return;
  const m = emptyMelody(1, melody.meter, melody.key || studio.melody.key);
  m.tokens = melody.tokens;
  m.title = file.name.replace(/\.midi?$/i, "");
  open(m);
  // One status line, written by save(): a later status() would hide the save's confirmation.
  const notes = [melody.octaves ? `moved ${melody.octaves} octave(s)` : "", melody.cut_bars ? `cut ${melody.cut_bars} bar(s)` : ""];
  const details = [`${melody.length / meter().steps_per_bar} bars`, ...notes.filter(Boolean)].join(", ");
  await save(`import ${file.name}: ${details}`);
}

// ------------------------------------------------------------------------------------------- saved melodies

async function refreshList() {
  const { melodies } = await api("GET", "/api/melodies");
  const list = $("melody-list");
  list.innerHTML = "";
  melodies.forEach((row) => {
    const li = document.createElement("li");
    li.dataset.id = row.id;
    const when = new Date(row.updated).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    li.textContent = row.title || `Untitled, ${when}`;
    const meta = document.createElement("small");
    const bars = row.length / studio.info.meters[row.meter].steps_per_bar;
    meta.textContent = `${bars} bar${bars === 1 ? "" : "s"} ${row.meter} · ${row.key} · version ${row.version}`;
    li.appendChild(meta);
    li.addEventListener("click", () => load(row.id));
    list.appendChild(li);
  });
  markCurrent();
  return melodies;
}

function markCurrent() {
  document.querySelectorAll("#melody-list li").forEach((li) => {
    li.classList.toggle("current", studio.melody && li.dataset.id === studio.melody.id);
  });
}

async function load(id) {
  const doc = await attempt("open", () => api("GET", `/api/melodies/${encodeURIComponent(id)}`));
  if (!doc) return false;
  open({ id: doc.id, title: doc.title, tokens: doc.tokens, key: doc.key, meter: doc.meter, locked: new Set(doc.locked), model: doc.model });
  studio.version = doc.version;
  // Undo reaches back through every saved version, across reloads.
  studio.undo = doc.history.slice(0, -1).map((h) => ({ tokens: h.tokens, locked: h.locked, key: h.key, meter: h.meter }));
  syncControls();
  history.replaceState(null, "", `#${doc.id}`);
  status(`opened “${doc.title || doc.id}” (version ${doc.version}, ${doc.history.length} in its history)`);
  return true;
}

// ------------------------------------------------------------------------------------------------- A/B mode

async function newPair() {
  const models = [$("ab-model-a").value, $("ab-model-b").value];
  const bars = Number($("ab-bars").value);
  const seeds = [Math.floor(Math.random() * 1e9), Math.floor(Math.random() * 1e9)];
  if (models[0] === models[1] && seeds[0] === seeds[1]) seeds[1] += 1;
  const order = Math.random() < 0.5 ? [0, 1] : [1, 0]; // which model plays as "A" is hidden until the answer
  $("ab-result").textContent = "";
  const results = await attempt("A/B", () =>
    Promise.all(order.map((i) => api("POST", "/api/generate", generateBody(1, models[i], seeds[i], bars)))),
  );
  if (!results) return;
  studio.ab = {
    a: results[0].melodies[0],
    b: results[1].melodies[0],
    modelA: models[order[0]],
    modelB: models[order[1]],
    key: studio.melody.key,
  };
  drawMini($("side-a").querySelector("canvas"), studio.ab.a);
  drawMini($("side-b").querySelector("canvas"), studio.ab.b);
  setAnswerButtons(true);
  status("a new pair: play both, then choose");
}

function setAnswerButtons(enabled) {
  ["prefer-a", "prefer-b", "prefer-tie", "play-a", "play-b"].forEach((id) => ($(id).disabled = !enabled));
}

async function answer(winner) {
  const pair = studio.ab;
  if (!pair) return;
  const saved = await attempt("answer", () =>
    api("POST", "/api/preferences", {
      a: pair.a,
      b: pair.b,
      winner,
      key: pair.key,
      length: pair.a.length,
      listener: $("listener").value.trim() || "anonymous",
      source: "studio",
      model_a: pair.modelA,
      model_b: pair.modelB,
    }),
  );
  if (!saved) return;
  studio.abCount += 1;
  studio.ab = null;
  setAnswerButtons(false);
  $("ab-count").textContent = `${studio.abCount} answer(s) this session`;
  const choice = { a: "A", b: "B", tie: "no preference" }[winner];
  $("ab-result").textContent = `saved: ${choice}. A was ${pair.modelA}, B was ${pair.modelB}.`;
  status(`answer saved to ${saved.file}`);
}

function showTab(name) {
  $("compose").hidden = name !== "compose";
  $("ab").hidden = name !== "ab";
  $("tab-compose").classList.toggle("active", name === "compose");
  $("tab-ab").classList.toggle("active", name === "ab");
  if (name === "compose") render();
}

// ---------------------------------------------------------------------------------------------------- start

function wire() {
  $("roll").addEventListener("mousedown", onRollDown);
  $("bar-header").addEventListener("click", onBarClick);
  $("undo").addEventListener("click", () => undoRedo(-1));
  $("redo").addEventListener("click", () => undoRedo(1));
  $("up").addEventListener("click", () => transpose(1));
  $("down").addEventListener("click", () => transpose(-1));
  $("up-octave").addEventListener("click", () => transpose(12));
  $("down-octave").addEventListener("click", () => transpose(-12));
  $("unlock-all").addEventListener("click", () => change("unlock all", (m) => m.locked.clear()));
  $("clear").addEventListener("click", () =>
    change("clear", (m) => {
      m.tokens = notesToTokens([], length());
      m.locked.clear();
    }),
  );
  $("regenerate").addEventListener("click", regenerate);
  $("variations").addEventListener("click", variations);
  $("play").addEventListener("click", () => playTokens(studio.melody.tokens));
  ["midi", "musicxml", "wav"].forEach((f) => $(`export-${f}`).addEventListener("click", () => download(f)));
  $("import").addEventListener("change", (event) => {
    if (event.target.files.length) importMidi(event.target.files[0]);
    event.target.value = "";
  });
  $("key").addEventListener("change", () => change(`key ${$("key").value}`, (m) => (m.key = $("key").value)));
  $("meter").addEventListener("change", () => resize(Number($("bars").value), $("meter").value));
  $("bars").addEventListener("change", () => resize(Number($("bars").value), studio.melody.meter));
  $("model").addEventListener("change", () => (studio.melody.model = $("model").value));
  $("title").addEventListener("change", () => {
    studio.melody.title = $("title").value.trim();
    save("rename");
  });
  $("new-melody").addEventListener("click", () => {
    open(emptyMelody(Number($("bars").value) || 2, studio.melody.meter, studio.melody.key));
    history.replaceState(null, "", `#${studio.melody.id}`);
    status("a new, empty melody: it is saved with its first edit");
  });
  $("tab-compose").addEventListener("click", () => showTab("compose"));
  $("tab-ab").addEventListener("click", () => showTab("ab"));
  $("ab-new").addEventListener("click", newPair);
  $("play-a").addEventListener("click", () => studio.ab && playTokens(studio.ab.a));
  $("play-b").addEventListener("click", () => studio.ab && playTokens(studio.ab.b));
  $("prefer-a").addEventListener("click", () => answer("a"));
  $("prefer-b").addEventListener("click", () => answer("b"));
  $("prefer-tie").addEventListener("click", () => answer("tie"));
  window.addEventListener("resize", () => studio.melody && render());
  window.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.key.toLowerCase() !== "z" || event.target.tagName === "INPUT") return;
    event.preventDefault();
    undoRedo(event.shiftKey ? 1 : -1);
  });
}

async function start() {
  studio.info = await api("GET", "/api/models");
  const names = studio.info.models.map((m) => m.name);
  const labels = studio.info.models.map((m) => `${m.name} (${m.kind})`);
  fillSelect($("model"), names, labels);
  fillSelect($("ab-model-a"), names, labels);
  fillSelect($("ab-model-b"), names, labels);
  $("ab-model-b").value = names[names.length - 1];
  fillSelect($("key"), studio.info.keys);
  fillSelect($("meter"), Object.keys(studio.info.meters));
  fillBars($("bars"), "4/4");
  fillBars($("ab-bars"), "4/4");
  $("ab-bars").value = "2";
  setAnswerButtons(false);
  wire();
  const saved = await refreshList();
  const wanted = decodeURIComponent(location.hash.slice(1));
  const known = saved.find((row) => row.id === wanted) || saved[0];
  if (!known || !(await load(known.id))) {
    open(emptyMelody());
    status("a new, empty melody: click the roll to add notes, or Regenerate");
  }
  followPlayhead();
  document.body.dataset.ready = "true";
}

start().catch((error) => status(`the studio could not start: ${error.message}`, true));
