// avatarchat page: chat box + avatar stage with three stacked <video> layers (idle loop, two clip layers).
// Clips arrive as WebSocket `clip_ready` events; they play in `seq` order, the next one pre-loaded in the
// hidden layer and switched in on `ended`; idle fades back (300 ms) when a reply is played out. The page
// reports what it plays (`clip_started`, `clip_ended`), so the server knows a reply is still being heard.
(() => {
  "use strict";
  const FADE_MS = 300;
  const PING_MS = 30000;
  const STALL_MS = 8000;        // a missing seq with later clips ready: skip it after this long
  const MAX_LOG_LINES = 200;    // the chat log and the stats stay bounded on a long visit
  const MAX_STATS = 500;

  const $ = (id) => document.getElementById(id);
  const log = $("log"), form = $("form"), input = $("message"), statusEl = $("status"), voiceSel = $("voice");
  const idle = $("idle"), unlockBtn = $("unlock");
  const layers = [$("clipA"), $("clipB")];

  // Observable state for people and tests.
  const stats = { clipsPlayed: [], gapsMs: [], events: [], errors: [] };
  window.avatarchat = { stats };
  const remember = (list, item) => { list.push(item); if (list.length > MAX_STATS) list.splice(0, list.length - MAX_STATS); };

  function addLine(kind, text) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = text;
    log.appendChild(li);
    while (log.children.length > MAX_LOG_LINES) log.removeChild(log.firstChild);
    log.scrollTop = log.scrollHeight;
    return li;
  }

  // ---- access key: asked once when the server has one; POST /access trades it for an HttpOnly cookie that ------
  // every later request, video and the socket carry (a <video> or a WebSocket cannot send a header).
  const keyForm = $("keyform"), keyInput = $("key"), keyError = $("keyerror");
  let keyAsked = null;
  function askKey() {
    if (keyAsked) return keyAsked;
    keyAsked = new Promise((resolve) => {
      keyForm.hidden = false;
      keyInput.focus();
      keyForm.addEventListener("submit", async function submit(e) {
        e.preventDefault();
        const res = await fetch("/access", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key: keyInput.value }),
        }).catch(() => null);
        if (!res || !res.ok) {
          keyError.textContent = res && res.status === 401 ? "That key is not valid." : "Could not reach the server.";
          return;
        }
        keyForm.removeEventListener("submit", submit);
        keyForm.hidden = true;
        keyInput.value = keyError.textContent = "";
        keyAsked = null;
        idle.load();  // its first load was refused without the key
        resolve();
      });
    });
    return keyAsked;
  }
  // fetch(), asking for the access key (and trying again) when the server says one is needed.
  async function api(url, options = {}) {
    for (;;) {
      const res = await fetch(url, options);
      if (res.status !== 401) return res;
      const body = await res.clone().json().catch(() => ({}));
      if (!(body.error && body.error.code === "access_key_required")) return res;
      await askKey();
    }
  }

  // ---- session: the server issues it; its token is this tab's credential ----------------------------------
  let sessionId = sessionStorage.getItem("avatarchat.session");
  async function newSession() {
    const res = await api("/session", { method: "POST" });
    if (!res.ok) throw new Error(`the server refused a new session (${res.status})`);
    sessionId = (await res.json()).session_id;
    sessionStorage.setItem("avatarchat.session", sessionId);
    window.avatarchat.sessionId = sessionId;
    return sessionId;
  }
  async function ensureSession() { return sessionId || newSession(); }
  window.avatarchat.sessionId = sessionId;

  // ---- playback -----------------------------------------------------------------------------------------
  // Replies in the order they started; each keeps its clips by seq until they play (clips may arrive out of order).
  const order = [];             // reply ids
  const replies = new Map();    // id -> { next, pending: Map(seq -> event), failed: Set, done, sentences, cancelled }
  let active = null;            // layer playing now
  let lastEndedAt = null;
  let blockedSince = null;      // when the head reply started waiting for a seq that may never come

  function other(layer) { return layer === layers[0] ? layers[1] : layers[0]; }

  function state(id) {
    if (!replies.has(id)) {
      replies.set(id, { next: 0, pending: new Map(), failed: new Set(), done: false, sentences: null, cancelled: false });
      order.push(id);
    }
    return replies.get(id);
  }

  function dropHead() { replies.delete(order.shift()); }

  // The clip to play next, or null. Drops replies that are played out or cancelled, and steps over
  // sentences the server reported as failed.
  function nextClip() {
    while (order.length) {
      const r = replies.get(order[0]);
      if (r.cancelled) { dropHead(); continue; }
      while (r.failed.has(r.next)) r.next += 1;
      const ev = r.pending.get(r.next);
      if (ev) return ev;
      if (r.done && r.sentences !== null && r.next >= r.sentences) { dropHead(); continue; }
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
    const ev = nextClip();
    if (!ev) return;
    const spare = active ? other(active) : layers[0];
    if (spare.dataset.reply === ev.reply && spare.dataset.seq === String(ev.seq)) return;
    load(spare, ev);
  }

  function show(layer) {
    void layer.offsetWidth;  // commit the hidden state first, so the fade runs (rAF would wait in a hidden tab)
    layer.classList.add("shown");
  }

  function startNext() {
    const ev = nextClip();
    if (!ev) return false;
    blockedSince = null;
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
      show(layer);
    }
    play(layer);
    if (prev) {
      setTimeout(() => { if (active !== prev) { prev.classList.remove("shown", "cut"); prev.pause(); } }, 60);
    }
    preloadNext();
    return true;
  }

  // Autoplay rules may refuse play(): show "tap to hear", which unlocks every layer inside the user's gesture.
  function play(layer) {
    const p = layer.play();
    if (p) p.catch((e) => {
      remember(stats.errors, String(e));
      if (e && e.name === "NotAllowedError") unlockBtn.hidden = false;
    });
  }
  unlockBtn.addEventListener("click", () => {
    unlockBtn.hidden = true;
    for (const v of [idle, ...layers]) {
      const p = v.play();
      if (p) p.then(() => { if (v !== idle && v !== active) v.pause(); }).catch(() => {});
    }
    if (!active) startNext();
  });

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

  function report(type, layer) {
    if (ws && ws.readyState === 1 && layer.dataset.reply) {
      ws.send(JSON.stringify({ type, reply: layer.dataset.reply, seq: Number(layer.dataset.seq) }));
    }
  }

  layers.forEach((layer) => {
    layer.addEventListener("ended", () => {
      if (layer !== active) return;
      lastEndedAt = performance.now();
      report("clip_ended", layer);
      remember(stats.clipsPlayed, { reply: layer.dataset.reply, seq: Number(layer.dataset.seq), at: lastEndedAt,
                                    url: layer.getAttribute("src") });
      if (!startNext()) {
        backToIdle();
        // A finished reply is not a gap: only count waits for a clip of a reply still being spoken.
        nextClip();
        if (!replies.has(layer.dataset.reply)) lastEndedAt = null;
      }
    });
    layer.addEventListener("playing", () => {
      if (layer !== active) return;
      report("clip_started", layer);
      if (lastEndedAt !== null) remember(stats.gapsMs, performance.now() - lastEndedAt);
      lastEndedAt = null;
    });
  });

  // A sentence that never comes (its error was lost, say) must not hold the rest of the conversation.
  setInterval(() => {
    if (active || !order.length) { blockedSince = null; return; }
    const r = replies.get(order[0]);
    const later = [...r.pending.keys()].some((s) => s > r.next) || (r.done && r.sentences !== null);
    if (!later || nextClip()) { blockedSince = null; return; }
    if (blockedSince === null) blockedSince = performance.now();
    else if (performance.now() - blockedSince > STALL_MS) {
      r.failed.add(r.next);
      blockedSince = null;
      startNext();
    }
  }, 1000);

  function onClip(ev) {
    const r = state(ev.reply);
    if (r.cancelled || ev.seq < r.next) return;
    r.pending.set(ev.seq, ev);
    if (!active) startNext(); else preloadNext();
  }

  function onDone(ev) {
    const r = state(ev.reply);
    r.done = true;
    r.sentences = ev.sentences ?? ev.clips;
    if (!active) startNext();
  }

  function cancelReply(id) {
    const r = state(id);
    r.cancelled = true;
    r.pending.clear();
    if (active && active.dataset.reply === id) {
      lastEndedAt = null;
      backToIdle();
    }
    nextClip();
  }

  function onError(ev) {
    addLine("error", `⚠ ${ev.message}`);
    if (ev.reply && Number.isInteger(ev.seq)) {
      state(ev.reply).failed.add(ev.seq);
      if (!active) startNext();
    }
  }

  // On (re)connect the server says which replies are still to be heard: resume them, forget the rest.
  function onState(ev) {
    const live = new Set(ev.replies.map((s) => s.reply));
    for (const id of [...order]) {
      const playing = active && active.dataset.reply === id;
      if (!live.has(id) && !playing) { replies.delete(id); order.splice(order.indexOf(id), 1); }
    }
    for (const s of ev.replies) {
      const fresh = !replies.has(s.reply);
      const r = state(s.reply);
      if (fresh) r.next = s.played.length ? Math.max(...s.played) + 1 : 0;  // a reloaded page: resume after what was heard
      for (const seq of s.failed) r.failed.add(seq);
      for (const c of s.clips) if (c.seq >= r.next && !(active && active.dataset.reply === c.reply && Number(active.dataset.seq) === c.seq)) r.pending.set(c.seq, c);
      if (s.done) { r.done = true; r.sentences = s.sentences ?? s.clips.length; }
    }
    if (!active) startNext(); else preloadNext();
  }

  // ---- socket -------------------------------------------------------------------------------------------
  // lastId: the last event of this session the page has; a reconnect asks for the ones after it (any node).
  let ws = null, pingTimer = null, attempts = 0, lastId = null, lastSession = null;
  async function connect() {
    try { await ensureSession(); } catch (err) { statusEl.textContent = `offline — ${err.message}`; return reconnectLater(); }
    if (lastSession !== sessionId) { lastId = null; lastSession = sessionId; }
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const after = lastId ? `&after=${encodeURIComponent(lastId)}` : "";
    ws = new WebSocket(`${proto}://${location.host}/ws?session_id=${encodeURIComponent(sessionId)}${after}`);
    ws.onopen = () => {
      attempts = 0;
      statusEl.textContent = "connected";
      pingTimer = setInterval(() => { if (ws.readyState === 1) ws.send(JSON.stringify({ type: "ping" })); }, PING_MS);
    };
    ws.onclose = (e) => {
      clearInterval(pingTimer);
      if (e.code === 4404) { sessionId = null; sessionStorage.removeItem("avatarchat.session"); }  // expired: get a new one
      reconnectLater();
    };
    ws.onmessage = (msg) => {
      let ev;
      try { ev = JSON.parse(msg.data); } catch { return; }
      if (typeof ev.id === "string") lastId = ev.id;
      else if (ev.type === "session_state" && !lastId) lastId = ev.last_id || null;
      handle(ev);
    };
  }
  // Back off 1, 2, 4 … 30 s with jitter, so a restarted server is not hit by every page at the same instant.
  function reconnectLater() {
    const delay = Math.min(30000, 1000 * 2 ** attempts) * (0.5 + Math.random());
    attempts += 1;
    statusEl.textContent = `disconnected — reconnecting in ${Math.round(delay / 1000)} s…`;
    setTimeout(connect, delay);
  }

  function handle(ev) {
    remember(stats.events, { type: ev.type, at: performance.now(), seq: ev.seq, reply: ev.reply, voice: ev.voice });
    if (ev.type === "clip_ready") onClip(ev);
    else if (ev.type === "speech_done") onDone(ev);
    else if (ev.type === "speech_cancelled") cancelReply(ev.reply);
    else if (ev.type === "session_state") onState(ev);
    else if (ev.type === "reply_text") showReply(ev.reply, ev.text);
    else if (ev.type === "reply_partial") showReply(ev.reply, ev.text, true);
    else if (ev.type === "error") onError(ev);
    else if (ev.type === "speech_skipped") addLine("info", `🔇 ${ev.message}`);
    else if ((ev.type === "vad" || ev.type === "transcript") && window.avatarchat.voiceEvent) window.avatarchat.voiceEvent(ev);
  }
  // For voice.js: the socket (audio frames, voice_end), the chat log, and stopping the avatar at once.
  window.avatarchat.send = (data) => { if (!ws || ws.readyState !== 1) return false; ws.send(data); return true; };
  window.avatarchat.addLine = addLine;
  window.avatarchat.stopSpeaking = () => { for (const id of [...order]) cancelReply(id); };
  window.avatarchat.handle = handle;  // the same entry point the socket uses; tests replay events through it

  // ---- chat ---------------------------------------------------------------------------------------------
  const replyLines = new Map();  // reply id -> its <li>; partial text grows in place, the final text replaces it
  function showReply(id, text, partial = false) {
    if (!id) return;
    let li = replyLines.get(id);
    if (!li) {
      li = addLine("avatar", text);
      replyLines.set(id, li);
      if (replyLines.size > MAX_LOG_LINES) replyLines.delete(replyLines.keys().next().value);
    } else if (!li.dataset.final) {
      li.textContent = text;
    }
    if (!partial) li.dataset.final = "1";
    else li.classList.add("partial");
    if (!partial) li.classList.remove("partial");
  }

  async function postChat(message) {
    await ensureSession();
    return api("/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session_id: sessionId, message, voice: voiceSel.value || null }),
    });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    input.value = "";
    addLine("user", message);
    // Barge-in starts here: the avatar stops at once, without waiting for the server's speech_cancelled.
    for (const id of [...order]) cancelReply(id);
    try {
      let res = await postChat(message);
      let body = await res.json().catch(() => ({}));
      if (res.status === 404 && body.error && body.error.code === "unknown_session") {
        await newSession();  // the server forgot us (restart, expiry): start over and say it again
        if (ws) ws.close();
        res = await postChat(message);
        body = await res.json().catch(() => ({}));
      }
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
      const res = await api("/voices");
      const body = await res.json();
      voiceSel.textContent = "";
      // Natural (neural) voices first, then the robotic ones; espeak-ng's ~130 languages under their own heading.
      const heading = (v) => v.group || (v.tier === "robotic" ? "Robotic voices" : "Natural voices");
      const groups = new Map();
      const order = (v) => (v.id === body.default ? 0 : v.tier === "natural" ? 1 : v.group ? 3 : 2);
      for (const v of [...body.voices].sort((a, b) => order(a) - order(b))) {  // stable: the server's order within
        const name = heading(v);
        if (!groups.has(name)) {
          const g = document.createElement("optgroup");
          g.label = name;
          groups.set(name, g);
          voiceSel.appendChild(g);
        }
        const opt = document.createElement("option");
        opt.value = v.id;
        const about = [v.language_name || v.language, v.gender].filter(Boolean).join(", ");
        opt.textContent = `${v.label || v.name}${about ? ` (${about})` : ""}`;
        if (v.language) opt.lang = v.language;
        if (v.id === body.default) opt.selected = true;
        groups.get(name).appendChild(opt);
      }
      const saved = sessionStorage.getItem("avatarchat.voice");
      if (saved && body.voices.some((v) => v.id === saved)) voiceSel.value = saved;
      followVoiceLanguage();
    } catch (err) {
      voiceSel.hidden = true;
    }
  }
  // The page's language (and so the lang of what it shows) follows the chosen voice's.
  function followVoiceLanguage() {
    const opt = voiceSel.selectedOptions[0];
    if (opt && opt.lang) document.documentElement.lang = opt.lang;
  }
  voiceSel.addEventListener("change", () => {
    sessionStorage.setItem("avatarchat.voice", voiceSel.value);
    followVoiceLanguage();
  });

  loadVoices();
  connect();
})();
