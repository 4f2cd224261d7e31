// bodytalk dashboard: one WebSocket (/ws) of JSON updates; no library, no network beyond this host.
// Everything from the bus is shown with textContent, never parsed as HTML.
"use strict";

const WINDOW_S = 180;          // timeline span
const STALE_S = 3;             // a body whose frames stopped this long ago is drawn faded
const state = { bodies: {}, frames: {}, timeline: [], health: {}, connected: false, updates: 0 };
window.bodytalk = state;       // page state, for tests and the console

const $ = (sel) => document.querySelector(sel);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => setConnected(true);
  ws.onmessage = (m) => { state.updates++; apply(JSON.parse(m.data)); };
  ws.onclose = () => { setConnected(false); setTimeout(connect, 1000); };
}

function setConnected(on) {
  state.connected = on;
  const c = $("#connection");
  c.textContent = on ? "live" : "reconnecting…";
  c.className = "conn " + (on ? "on" : "off");
}

function body(id) {
  let b = state.bodies[id];
  if (!b) {
    const card = el("div", "body"); card.dataset.id = id;
    const top = el("div", "top");
    top.append(el("span", "label", "…"), el("span", "confidence"), el("span", "id", id), el("span", "latency"));
    card.append(top, el("div", "probs"), el("div", "mgs"), el("div", "explanation none", "no explanation yet"));
    const after = [...$("#bodies").children].find((c) => c.dataset.id.localeCompare(id, undefined, { numeric: true }) > 0);
    $("#bodies").insertBefore(card, after || null);  // cards in id order
    b = state.bodies[id] = { id, card, reading: null, explanation: null, streaming: null, color: "#d9d9d9", seen: 0 };
  }
  return b;
}

function apply(u) {
  switch (u.t) {
    case "snapshot":
      state.timeline = u.timeline;
      u.readings.forEach(emotion);
      u.health.forEach((h) => { state.health[h.component] = h; });
      break;
    case "frame":
      state.frames[u.sensor] = u;
      u.bodies.forEach((fb) => { body(fb.id).seen = performance.now(); });
      break;
    case "emotion":
      emotion(u);
      if (u.status === "ok") state.timeline.push({ id: u.id, ts: u.ts, stable_label: u.stable_label, confidence: u.confidence, color: u.color });
      break;
    case "text":
      streamText(u);
      break;
    case "status":
      state.health[u.component] = u;
      break;
    case "left":
      if (state.bodies[u.id]) { state.bodies[u.id].card.remove(); delete state.bodies[u.id]; }
      break;
  }
}

function emotion(u) {
  const b = body(u.id);
  b.reading = u;
  if (u.status === "ok") b.color = u.color;
  if (u.explanation) { b.explanation = u.explanation; b.streaming = null; }
  renderCard(b);
}

function streamText(u) {
  const b = body(u.id);
  if (!b.streaming || b.streaming.seq !== u.window_seq) b.streaming = { seq: u.window_seq, text: "" };
  b.streaming.text += u.text;
  b.streaming.done = u.done;
  renderExplanation(b);
}

function renderCard(b) {
  const r = b.reading, card = b.card;
  card.style.borderLeftColor = b.color;
  const label = card.querySelector(".label");
  if (r.status === "ok") {
    label.textContent = r.stable_label || r.label;
    label.style.color = b.color;
    card.querySelector(".confidence").textContent = Math.round(100 * r.confidence) + "%";
  } else {
    label.textContent = r.status.replace("_", " ");
    label.style.color = "";
    card.querySelector(".confidence").textContent = r.reason || "";
  }
  card.querySelector(".latency").textContent = r.latency_ms == null ? "" : Math.round(r.latency_ms) + " ms";
  const probs = card.querySelector(".probs");
  probs.replaceChildren();
  Object.entries(r.probs).sort((a, b2) => b2[1] - a[1]).forEach(([name, p]) => {
    const bar = el("div", "bar"), fill = el("span");
    fill.style.width = (100 * p).toFixed(1) + "%";
    fill.style.background = name === (r.stable_label || r.label) ? b.color : "#51606f";
    bar.append(fill);
    probs.append(el("span", "", name), bar, el("span", "", Math.round(100 * p) + "%"));
  });
  const mgs = card.querySelector(".mgs");
  mgs.replaceChildren(...r.mgs.map((m) => el("span", "", m.replaceAll("_", " "))));
  renderExplanation(b);
}

function renderExplanation(b) {
  const e = b.card.querySelector(".explanation");
  if (b.streaming && !(b.explanation && b.streaming.done)) {
    e.textContent = b.streaming.text; e.className = "explanation" + (b.streaming.done ? "" : " streaming");
  } else if (b.explanation) {
    e.textContent = b.explanation; e.className = "explanation";
  }
}

function fitCanvas(c) {
  const r = c.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(r.width * dpr) || c.height !== Math.round(r.height * dpr)) {
    c.width = Math.round(r.width * dpr); c.height = Math.round(r.height * dpr);
  }
  const ctx = c.getContext("2d"); ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return [ctx, r.width, r.height];
}

let view = null;  // smoothed bounds of all joints: [xmin, xmax, ymin, ymax] in metres
function drawSkeletons() {
  const [ctx, w, h] = fitCanvas($("#skeletons"));
  ctx.clearRect(0, 0, w, h);
  const now = performance.now(), frames = Object.values(state.frames);
  let bodies = [];
  frames.forEach((f) => f.bodies.forEach((fb) => bodies.push([f, fb])));
  bodies = bodies.filter(([, fb]) => state.bodies[fb.id]);
  $("#empty").style.display = bodies.length ? "none" : "flex";
  if (!bodies.length) return;
  let b = [Infinity, -Infinity, Infinity, -Infinity];
  bodies.forEach(([, fb]) => fb.joints.forEach(([x, y]) => {
    b = [Math.min(b[0], x), Math.max(b[1], x), Math.min(b[2], y), Math.max(b[3], y)];
  }));
  view = view ? view.map((v, i) => v + 0.1 * (b[i] - v)) : b;
  const pad = 0.3, sx = view[1] - view[0] + 2 * pad, sy = view[3] - view[2] + 2 * pad;
  const s = Math.min(w / sx, (h - 30) / sy);
  const X = (x) => w / 2 + (x - (view[0] + view[1]) / 2) * s;
  const Y = (y) => h - 10 - (y - view[2] + pad) * s;
  bodies.forEach(([f, fb]) => {
    const st = state.bodies[fb.id];
    ctx.globalAlpha = now - st.seen > STALE_S * 1000 ? 0.3 : 1;
    ctx.strokeStyle = ctx.fillStyle = st.color;
    ctx.lineWidth = 4; ctx.lineCap = "round";
    f.bones.forEach(([p, c]) => {
      ctx.beginPath(); ctx.moveTo(X(fb.joints[p][0]), Y(fb.joints[p][1]));
      ctx.lineTo(X(fb.joints[c][0]), Y(fb.joints[c][1])); ctx.stroke();
    });
    let top = Infinity, cx = 0;
    fb.joints.forEach(([x, y]) => {
      ctx.beginPath(); ctx.arc(X(x), Y(y), 3.5, 0, 2 * Math.PI); ctx.fill();
      if (Y(y) < top) { top = Y(y); cx = X(x); }
    });
    const r = st.reading;
    ctx.font = "600 15px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText(r && r.status === "ok" ? (r.stable_label || r.label) : fb.id, cx, top - 14);
  });
  ctx.globalAlpha = 1;
}

function drawTimeline() {
  const c = $("#timeline"), [ctx, w, h] = fitCanvas(c);
  ctx.clearRect(0, 0, w, h);
  const now = Date.now() / 1000, t0 = now - WINDOW_S;
  state.timeline = state.timeline.filter((e) => e.ts >= t0 - 30);
  c.dataset.entries = state.timeline.length;
  const ids = Object.keys(state.bodies).sort();
  const left = 90, rowH = Math.min(24, (h - 20) / Math.max(1, ids.length));
  const X = (t) => left + (t - t0) / WINDOW_S * (w - left - 10);
  ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "middle";
  ids.forEach((id, row) => {
    const y = 6 + row * rowH, es = state.timeline.filter((e) => e.id === id);
    ctx.fillStyle = "#8a97a5"; ctx.textAlign = "left"; ctx.fillText(id, 6, y + rowH / 2);
    es.forEach((e, i) => {
      const end = i + 1 < es.length ? es[i + 1].ts : now;
      ctx.fillStyle = e.color; ctx.globalAlpha = 0.35 + 0.65 * e.confidence;
      ctx.fillRect(X(Math.max(e.ts, t0)), y + 2, Math.max(1, X(end) - X(Math.max(e.ts, t0))), rowH - 4);
    });
    ctx.globalAlpha = 1;
  });
  ctx.fillStyle = "#8a97a5"; ctx.textAlign = "right";
  for (let m = 0; m <= WINDOW_S / 60; m++) ctx.fillText(m ? `-${m} min` : "now", X(now - 60 * m), h - 8);
}

function renderHealth() {
  const tbody = $("#health tbody"), now = Date.now() / 1000;
  tbody.replaceChildren(...Object.values(state.health).sort((a, b) => a.component.localeCompare(b.component)).map((s) => {
    const tr = el("tr"); tr.dataset.component = s.component;
    const age = now - s.ts;
    tr.append(el("td", "", s.component), el("td", s.state === "running" ? "" : "bad", s.state),
              el("td", "", s.rate_hz.toFixed(1) + "/s"), el("td", s.drops ? "bad" : "", String(s.drops)),
              el("td", "", String(s.queue_depth)), el("td", age > 5 ? "bad" : "", age < 1 ? "now" : Math.round(age) + " s ago"));
    return tr;
  }));
}

function renderLegend() {
  const labels = {};
  Object.values(state.bodies).forEach((b) => { if (b.reading && b.reading.status === "ok") labels[b.reading.stable_label || b.reading.label] = b.color; });
  $("#legend").replaceChildren(...Object.entries(labels).sort().map(([name, color]) => {
    const s = el("span"), dot = el("i"); dot.style.background = color; s.append(dot, name); return s;
  }));
}

function frame() { drawSkeletons(); requestAnimationFrame(frame); }
setInterval(() => { drawTimeline(); renderHealth(); renderLegend(); }, 250);
$("#window-min").textContent = WINDOW_S / 60;
connect();
requestAnimationFrame(frame);
