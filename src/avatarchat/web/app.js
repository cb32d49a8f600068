// avatarchat page: chat box + avatar stage with three stacked <video> layers (idle loop, two clip layers).
// Clips arrive as WebSocket `clip_ready` events; they play in `seq` order, the next one pre-loaded in the
// hidden layer and switched in on `ended`; idle fades back (300 ms) after `speech_done`.
(() => {
  "use strict";
  const FADE_MS = 300;
  const RECONNECT_MS = 3000;
  const PING_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const log = $("log"), form = $("form"), input = $("message"), statusEl = $("status"), voiceSel = $("voice");
  const idle = $("idle");
  const layers = [$("clipA"), $("clipB")];

  const sessionId = sessionStorage.getItem("avatarchat.session") ||
    (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)).replace(/[^A-Za-z0-9_-]/g, "");
  sessionStorage.setItem("avatarchat.session", sessionId);

  // Observable state for people and tests.
  const stats = { clipsPlayed: [], gapsMs: [], events: [], errors: [] };
  window.avatarchat = { sessionId, stats };

  function addLine(kind, text) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = text;
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    return li;
  }

  // ---- playback -----------------------------------------------------------------------------------------
  // Replies in the order they started; each keeps its clips by seq until they play (clips may arrive out of order).
  const order = [];             // reply ids
  const replies = new Map();    // id -> { next, pending: Map(seq -> event), done, clips }
  let active = null;            // layer playing now
  let lastEndedAt = null;

  function other(layer) { return layer === layers[0] ? layers[1] : layers[0]; }

  function state(id) {
    if (!replies.has(id)) { replies.set(id, { next: 0, pending: new Map(), done: false, clips: null }); order.push(id); }
    return replies.get(id);
  }

  // The next clip to play, skipping past replies that are completely spoken.
  function peekNext() {
    while (order.length) {
      const r = replies.get(order[0]);
      const ev = r.pending.get(r.next);
      if (ev) return ev;
      if (r.done && r.next >= (r.clips ?? r.next)) { replies.delete(order.shift()); continue; }
      return null;
    }
    return null;
  }

  function load(layer, ev) {
    layer.dataset.seq = String(ev.seq);
    layer.dataset.reply = ev.reply;
    layer.src = ev.url;
    layer.load();
  }

  function preloadNext() {
    const ev = peekNext();
    if (!ev) return;
    const spare = active ? other(active) : layers[0];
    if (spare.dataset.reply === ev.reply && spare.dataset.seq === String(ev.seq)) return;
    load(spare, ev);
  }

  function startNext() {
    const ev = peekNext();
    if (!ev) return false;
    const r = replies.get(ev.reply);
    r.pending.delete(ev.seq);
    r.next += 1;
    const prev = active;
    const layer = prev ? other(prev) : layers[0];
    if (!(layer.dataset.reply === ev.reply && layer.dataset.seq === String(ev.seq))) load(layer, ev);
    active = layer;
    layer.classList.add("front");
    if (prev) {
      // Clip to clip: both edges are the rest frame, so cut without a fade.
      layer.classList.add("cut", "shown");
      prev.classList.remove("front");
    } else {
      layer.classList.remove("cut");
      requestAnimationFrame(() => layer.classList.add("shown"));
    }
    const p = layer.play();
    if (p) p.catch((e) => { stats.errors.push(String(e)); });
    if (prev) {
      setTimeout(() => { if (active !== prev) { prev.classList.remove("shown", "cut"); prev.pause(); } }, 60);
    }
    preloadNext();
    return true;
  }

  function backToIdle() {
    const layer = active;
    active = null;
    if (!layer) return;
    idle.currentTime = 0;  // the idle loop starts on the rest frame, like every clip ends
    idle.play().catch(() => {});
    layer.classList.remove("cut");
    layer.classList.remove("shown");
    setTimeout(() => { if (active !== layer) { layer.pause(); layer.classList.remove("front"); } }, FADE_MS);
  }

  layers.forEach((layer) => {
    layer.addEventListener("ended", () => {
      if (layer !== active) return;
      lastEndedAt = performance.now();
      stats.clipsPlayed.push({ reply: layer.dataset.reply, seq: Number(layer.dataset.seq), at: lastEndedAt,
                               url: layer.getAttribute("src") });
      if (!startNext()) {
        backToIdle();
        // A finished reply is not a gap: only count waits for a clip of a reply still being spoken.
        peekNext();
        if (!replies.has(layer.dataset.reply)) lastEndedAt = null;
      }
    });
    layer.addEventListener("playing", () => {
      if (layer !== active) return;
      if (lastEndedAt !== null) stats.gapsMs.push(performance.now() - lastEndedAt);
      lastEndedAt = null;
    });
  });

  function onClip(ev) {
    const r = state(ev.reply);
    if (r.cancelled) return;
    r.pending.set(ev.seq, ev);
    if (!active) startNext(); else preloadNext();
  }

  function onDone(ev) {
    const r = state(ev.reply);
    r.done = true;
    r.clips = ev.clips;
    if (!active) peekNext();
  }

  function onCancelled(ev) {
    const r = state(ev.reply);
    r.cancelled = true;
    r.pending.clear();
    r.done = true;
    r.clips = r.next;
    if (active && active.dataset.reply === ev.reply) {
      lastEndedAt = null;
      backToIdle();
    }
    peekNext();
  }

  // ---- socket -------------------------------------------------------------------------------------------
  let ws = null, pingTimer = null;
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws?session_id=${encodeURIComponent(sessionId)}`);
    ws.onopen = () => {
      statusEl.textContent = "connected";
      pingTimer = setInterval(() => { if (ws.readyState === 1) ws.send(JSON.stringify({ type: "ping" })); }, PING_MS);
    };
    ws.onclose = () => {
      statusEl.textContent = "disconnected — reconnecting…";
      clearInterval(pingTimer);
      setTimeout(connect, RECONNECT_MS);
    };
    ws.onmessage = (msg) => {
      let ev;
      try { ev = JSON.parse(msg.data); } catch { return; }
      handle(ev);
    };
  }

  function handle(ev) {
    stats.events.push({ type: ev.type, at: performance.now(), seq: ev.seq, reply: ev.reply, voice: ev.voice });
    if (ev.type === "clip_ready") onClip(ev);
    else if (ev.type === "speech_done") onDone(ev);
    else if (ev.type === "speech_cancelled") onCancelled(ev);
    else if (ev.type === "reply_text") showReply(ev.reply, ev.text);
    else if (ev.type === "reply_partial") showReply(ev.reply, ev.text, true);
    else if (ev.type === "error") addLine("error", `⚠ ${ev.message}`);
  }
  window.avatarchat.handle = handle;  // the same entry point the socket uses; tests replay events through it

  // ---- chat ---------------------------------------------------------------------------------------------
  const replyLines = new Map();  // reply id -> its <li>; partial text grows in place, the final text replaces it
  function showReply(id, text, partial = false) {
    if (!id) return;
    let li = replyLines.get(id);
    if (!li) {
      li = addLine("avatar", text);
      replyLines.set(id, li);
    } else if (!li.dataset.final) {
      li.textContent = text;
    }
    if (!partial) li.dataset.final = "1";
    else li.classList.add("partial");
    if (!partial) li.classList.remove("partial");
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    input.value = "";
    addLine("user", message);
    try {
      const res = await fetch("/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session_id: sessionId, message, voice: voiceSel.value || null }),
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) {
        addLine("error", `⚠ ${(body.error && body.error.message) || res.statusText}`);
        return;
      }
      showReply(body.reply_id, body.text);
    } catch (err) {
      addLine("error", `⚠ could not reach the server: ${err}`);
    }
  });

  // ---- voices -------------------------------------------------------------------------------------------
  async function loadVoices() {
    try {
      const res = await fetch("/voices");
      const body = await res.json();
      voiceSel.textContent = "";
      const groups = new Map();  // one <optgroup> per backend, the default voice's backend first
      const backendOf = (id) => id.split(":")[0];
      const order = [...new Set([backendOf(body.default), ...body.voices.map((v) => v.backend)])];
      for (const b of order) {
        const g = document.createElement("optgroup");
        g.label = b;
        groups.set(b, g);
        voiceSel.appendChild(g);
      }
      for (const v of body.voices) {
        const opt = document.createElement("option");
        opt.value = v.id;
        opt.textContent = `${v.name}${v.language ? ` (${v.language})` : ""}`;
        if (v.id === body.default) opt.selected = true;
        groups.get(v.backend).appendChild(opt);
      }
      const saved = sessionStorage.getItem("avatarchat.voice");
      if (saved && body.voices.some((v) => v.id === saved)) voiceSel.value = saved;
    } catch (err) {
      voiceSel.hidden = true;
    }
  }
  voiceSel.addEventListener("change", () => sessionStorage.setItem("avatarchat.voice", voiceSel.value));

  loadVoices();
  connect();
})();
