// avatarchat page: chat box + avatar stage with four stacked <video> layers (idle loop, listening loop, two clip
// layers; the listening loop is stage-listening.js's).
// Clips arrive as WebSocket `clip_ready` events; playback.js decides what plays next (seq order, the next clip
// pre-loaded in the hidden layer, retries and skips when a download fails); idle fades back (300 ms) when a reply
// is played out. The page reports what it plays (`clip_started`, `clip_ended`), so the server knows a reply is
// still being heard; reports made while the socket is down are sent when it is back.
(() => {
  "use strict";
  const FADE_MS = 300;
  const PING_MS = 30000;
  const PONG_WAIT_MS = 10000;   // no answer to a ping for this long: the connection is dead though not closed
  const THINKING_MAX_MS = 20000; // the "answer coming" cue never outstays a reply that went missing
  const MAX_LOG_LINES = 200;    // the chat log and the stats stay bounded on a long visit
  const MAX_STATS = 500;

  const $ = (id) => document.getElementById(id);
  const log = $("log"), form = $("form"), input = $("message"), statusEl = $("status"), voiceSel = $("voice");
  const idle = $("idle"), unlockBtn = $("unlock");
  const layers = [$("clipA"), $("clipB")];

  // Observable state for people and tests.
  const stats = { clipsPlayed: [], gapsMs: [], events: [], errors: [], thinking: [], holds: [], releases: [] };
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
  // One request at a time: the socket and a message typed before the access key was entered both wait for the
  // same new session (two sessions would put the socket on one and the chat on the other: a silent avatar).
  let creating = null;
  function newSession() {
    if (!creating) {
      creating = (async () => {
        const res = await api("/session", { method: "POST" });
        if (!res.ok) throw new Error(res.status === 503 ? "the server is full right now" : "the server refused a new conversation");
        sessionId = (await res.json()).session_id;
        sessionStorage.setItem("avatarchat.session", sessionId);
        window.avatarchat.sessionId = sessionId;
        window.dispatchEvent(new Event("avatarchat:session"));  // avatars.js: a new session has the default avatar
        return sessionId;
      })().finally(() => { creating = null; });
    }
    return creating;
  }
  async function ensureSession() { return creating || sessionId || newSession(); }
  window.avatarchat.sessionId = sessionId;

  // ---- playback: the order and failure rules live in playback.js; here only the DOM side of them ---------------
  // The two clip layers as playback.js's `media`: slot 0 and 1. A clip-to-clip switch is a cut (both edges are
  // the rest frame); idle <-> clip is a 300 ms fade.
  const reports = window.AvatarPlayback.createReportQueue(200);
  const media = {
    load(slot, url, at = 0) {
      const v = layers[slot];
      v.src = url;
      v.load();
      if (at > 0) v.addEventListener("loadedmetadata", () => { v.currentTime = at; }, { once: true });
    },
    play: (slot) => layers[slot].play(),
    enter(slot, prev) {
      const layer = layers[slot];
      layer.classList.add("front");
      if (prev !== null) {
        const old = layers[prev];
        layer.classList.add("cut", "shown");
        old.classList.remove("front");
        setTimeout(() => { if (player.active !== prev) { old.classList.remove("shown", "cut"); old.pause(); } }, 60);
      } else {
        layer.classList.remove("cut");
        void layer.offsetWidth;  // commit the hidden state first, so the fade runs (rAF would wait in a hidden tab)
        layer.classList.add("shown");
      }
    },
    leave(slot) {
      const layer = layers[slot];
      idle.currentTime = 0;  // the idle loop starts on the rest frame, like every clip ends
      idle.play().catch(() => {});
      layer.classList.remove("cut", "shown");
      setTimeout(() => { if (player.active !== slot) { layer.pause(); layer.classList.remove("front"); } }, FADE_MS);
    },
    // Turn-taking: the voice ducks to silence and the clip pauses on its frame, still shown; it goes on from
    // that frame, fading back in over 150 ms.
    hold(slot) {
      const v = layers[slot];
      clearInterval(v.fadeIn);
      v.volume = 0;
      v.pause();
    },
    release(slot) {
      const v = layers[slot];
      clearInterval(v.fadeIn);
      v.play().catch(() => {});
      v.fadeIn = setInterval(() => {
        v.volume = Math.min(1, v.volume + 0.2);
        if (v.volume >= 1) clearInterval(v.fadeIn);
      }, 30);
    },
    time: (slot) => layers[slot].currentTime,
    paused: (slot) => layers[slot].paused,
    probe: (url) => window.AvatarPlayback.probeClip(url, (u, o) => fetch(u, o)),
  };
  let waitingLine = null;
  const player = window.AvatarPlayback.createPlayer(media, {
    now: () => performance.now(),
    stats,
    remember,
    report(type, reply, seq) {
      if (type === "clip_started") setThinking(false);  // the answer is here: its first clip plays
      reports.push(JSON.stringify({ type, reply, seq }));
      reports.flush(sendNow);
    },
    notice(kind, text) {
      if (kind === "waiting" && !waitingLine) waitingLine = addLine("info", `⏳ ${text}`);
      else if (kind !== "waiting" && waitingLine) { waitingLine.remove(); waitingLine = null; }
      if (kind === "lost") addLine("error", `⚠ ${text}`);
    },
    gesture(needed) { unlockBtn.hidden = !needed; },
  });
  stats.lost = [];
  window.avatarchat.player = player;

  unlockBtn.addEventListener("click", () => {
    for (const v of [idle, ...layers]) {  // inside the user's gesture: every layer may play from now on
      const p = v.play();
      if (p) p.then(() => { if (v !== idle && layers.indexOf(v) !== player.active) v.pause(); }).catch(() => {});
    }
    player.unlock();
  });

  layers.forEach((layer, slot) => {
    layer.addEventListener("ended", () => player.ended(slot));
    layer.addEventListener("playing", () => player.playing(slot));
    layer.addEventListener("error", () => { if (layer.getAttribute("src")) player.failed(slot, "download"); });
  });
  setInterval(() => player.tick(), 1000);

  // ---- socket -------------------------------------------------------------------------------------------
  // lastId: the last event of this session the page has; a reconnect asks for the ones after it (any node).
  let ws = null, pingTimer = null, attempts = 0, lastId = null, lastSession = null, linkText = "connecting…";
  let heard = 0, pongTimer = null;  // messages received on this socket; a ping checks that the count moves
  // The status line: the socket's state, or that the device itself is offline (the browser knows that first).
  function showNetwork() {
    statusEl.textContent = navigator.onLine ? linkText : "offline — this device has no network; waiting for it…";
  }
  function setLink(text) { linkText = text; showNetwork(); }
  window.addEventListener("offline", () => showNetwork());
  async function connect() {
    try { await ensureSession(); } catch (err) {
      setLink(`offline — could not start a conversation: ${plainReason(err)}`);
      return reconnectLater();
    }
    if (lastSession !== sessionId) { lastId = null; lastSession = sessionId; }
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const after = lastId ? `&after=${encodeURIComponent(lastId)}` : "";
    ws = new WebSocket(`${proto}://${location.host}/ws?session_id=${encodeURIComponent(sessionId)}${after}`);
    ws.onopen = () => {
      attempts = 0;
      setLink("connected");
      reports.flush(sendNow);
      sendVoice();  // a new socket (or a restarted server) hears spoken turns with the picker's voice too
      pingTimer = setInterval(ping, PING_MS);
    };
    ws.onclose = (e) => {
      clearInterval(pingTimer);
      clearTimeout(pongTimer);
      if (e.code === 4404) { sessionId = null; sessionStorage.removeItem("avatarchat.session"); }  // expired: get a new one
      reconnectLater();
    };
    ws.onmessage = (msg) => {
      heard += 1;
      let ev;
      try { ev = JSON.parse(msg.data); } catch { return; }
      if (typeof ev.id === "string") lastId = ev.id;
      else if (ev.type === "session_state" && !lastId) lastId = ev.last_id || null;
      handle(ev);
    };
  }
  // A half-open connection (a laptop waking up, a NAT that forgot us) looks open for minutes: a ping that gets
  // no answer drops it and reconnects, and the catch-up (after=) brings what was missed.
  function ping() {
    if (!ws || ws.readyState !== 1) return;
    ws.send(JSON.stringify({ type: "ping" }));
    const before = heard, sock = ws;
    clearTimeout(pongTimer);
    pongTimer = setTimeout(() => { if (ws === sock && heard === before) dropSocket(); }, PONG_WAIT_MS);
  }
  function dropSocket() {
    const dead = ws;
    ws = null;
    clearInterval(pingTimer);
    dead.onclose = dead.onmessage = null;
    try { dead.close(); } catch { /* already closing */ }
    reconnectLater();
  }
  // Back off 1, 2, 4 … 30 s with jitter, so a restarted server is not hit by every page at the same instant.
  let reconnectTimer = null;
  function reconnectLater() {
    const delay = Math.min(30000, 1000 * 2 ** attempts) * (0.5 + Math.random());
    attempts += 1;
    setLink(`disconnected — reconnecting in ${Math.round(delay / 1000)} s…`);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }
  window.addEventListener("online", () => {  // the network is back: reconnect now, not at the end of the backoff
    showNetwork();
    if (ws && ws.readyState <= 1) return;
    attempts = 0;
    clearTimeout(reconnectTimer);
    connect();
  });

  // Words for a person, not a developer: what went wrong, and what to do about it.
  function plainReason(err) {
    if (err instanceof TypeError || !navigator.onLine) return "the server could not be reached (check the connection)";
    return (err && err.message) || String(err);
  }
  const PLAIN = {
    unknown_session: "This conversation has ended on the server. Send your message again to start a new one.",
    too_many_sessions: "The server is busy with other conversations. Please try again in a minute.",
    queue_full: "The avatar is still busy with earlier messages. Please wait a moment and try again.",
    store_unavailable: "The server is having trouble right now. Please try again in a moment.",
    internal: "Something went wrong on the server. Please try again.",
  };
  const plainError = (body, res) => (body.error && (PLAIN[body.error.code] || body.error.message))
    || `The server could not answer (${res.status}).`;

  function handle(ev) {
    remember(stats.events, { type: ev.type, at: performance.now(), seq: ev.seq, reply: ev.reply, voice: ev.voice });
    if (ev.type === "clip_ready") player.clip(ev);
    else if (ev.type === "speech_done") { player.done(ev); if (!ev.clips) setThinking(false); }
    else if (ev.type === "speech_cancelled") player.cancel(ev.reply);
    else if (ev.type === "session_state") { restoreLog(ev); player.resume(ev); }
    else if (ev.type === "reply_text") showReply(ev.reply, ev.text);
    else if (ev.type === "reply_partial") showReply(ev.reply, ev.text, true);
    else if (ev.type === "error") onError(ev);
    else if (ev.type === "speech_skipped") { setThinking(false); addLine("info", `🔇 ${ev.message}`); }
    else if (ev.type === "yield") player.hold();  // the person speaks: the avatar holds (docs/protocol.md)
    else if (ev.type === "resume") {  // it was a backchannel: the avatar goes on, nothing to answer
      setThinking(false);
      player.release();
      if (window.avatarchat.voiceEvent) window.avatarchat.voiceEvent(ev);
    } else if (ev.type === "not_heard") { setThinking(false); addLine("avatar cue", ev.text); }
    else if (ev.type === "vad" || ev.type === "transcript") {
      if (ev.type === "vad" && ev.state === "silence") setThinking(true);  // the spoken turn is over
      if (ev.type === "transcript" && ev.final && !ev.text) setThinking(false);  // it held no words: no answer
      if (window.avatarchat.voiceEvent) window.avatarchat.voiceEvent(ev);
    }
  }
  function onError(ev) {
    if (ev.code === "unknown_session") {  // the socket's session ended; connect() starts a new one
      addLine("info", "The earlier conversation has ended on the server; a new one has started.");
      return;
    }
    setThinking(false);
    addLine("error", `⚠ ${ev.message}`);
    if (ev.reply && Number.isInteger(ev.seq)) player.sentenceFailed(ev.reply, ev.seq);
  }
  function sendNow(data) {
    if (!ws || ws.readyState !== 1) return false;
    ws.send(data);
    return true;
  }
  // For voice.js: the socket (audio frames, voice_end), the chat log, and stopping the avatar at once.
  window.avatarchat.send = sendNow;
  window.avatarchat.addLine = addLine;
  window.avatarchat.stopSpeaking = () => { setThinking(false); player.cancelAll(); };
  window.avatarchat.handle = handle;  // the same entry point the socket uses; tests replay events through it
  // Your own avatar (POST /avatars, docs/protocol.md): the idle layer loops the chosen avatar's idle_url, the
  // listening layer (stage-listening.js) its listen_url.
  window.avatarchat.setAvatar = (idleUrl, listenUrl) => {
    idle.src = idleUrl;
    idle.play().catch(() => {});
    if (listenUrl && window.avatarchat.setListenLoop) window.avatarchat.setListenLoop(listenUrl);
  };
  window.avatarchat.api = api;  // for avatars.js: the same access-key handling
  window.avatarchat.ensureSession = ensureSession;

  // ---- "an answer is coming": a small nod of the avatar (style.css), and words for screen readers --------------
  const stage = $("layers"), thinkingText = $("thinking");
  let thinkingTimer = null;
  function setThinking(on) {
    clearTimeout(thinkingTimer);
    if (on) thinkingTimer = setTimeout(() => setThinking(false), THINKING_MAX_MS);
    if (on === stage.classList.contains("thinking")) return;
    stage.classList.toggle("thinking", on);
    thinkingText.textContent = on ? "The avatar is preparing an answer…" : "";
    remember(stats.thinking, { on, at: performance.now() });
  }

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

  // A reloaded page: the conversation so far from the server's session_state (once, into an empty log). Answers
  // carry their reply id, so the text of a reply still being spoken is one line, not two.
  function restoreLog(ev) {
    if (log.children.length || !Array.isArray(ev.history)) return;
    for (const m of ev.history) {
      if (m.role === "user") addLine("user", m.content);
      else if (m.role === "assistant" && m.reply) showReply(m.reply, m.content);
      else if (m.role === "assistant") addLine("avatar", m.content);
    }
    for (const r of ev.replies) if (r.text) showReply(r.reply, r.text, r.sentences === null);  // null: still written
  }

  async function postChat(message) {
    await ensureSession();
    return api("/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session_id: sessionId, message, voice: voiceSel.value || null,
                             avatar: window.avatarchat.avatar || null }),  // avatars.js's choice
    });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    input.value = "";
    addLine("user", message);
    // Barge-in starts here: the avatar stops at once, without waiting for the server's speech_cancelled.
    player.cancelAll();
    setThinking(true);
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
        setThinking(false);
        addLine("error", `⚠ ${plainError(body, res)}`);
        return;
      }
      showReply(body.reply_id, body.text);
    } catch (err) {
      setThinking(false);
      addLine("error", `⚠ Your message was not sent: ${plainReason(err)}.`);
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
      sendVoice();
    } catch (err) {
      voiceSel.hidden = true;
    }
  }
  // The page's language (and so the lang of what it shows) follows the chosen voice's.
  function followVoiceLanguage() {
    const opt = voiceSel.selectedOptions[0];
    if (opt && opt.lang) document.documentElement.lang = opt.lang;
  }
  // The session's voice changes at once (a `voice` frame), not with the next typed message: the next spoken
  // turn is heard in its language and answered in it.
  function sendVoice() {
    if (voiceSel.value) sendNow(JSON.stringify({ type: "voice", voice: voiceSel.value }));
  }
  voiceSel.addEventListener("change", () => {
    sessionStorage.setItem("avatarchat.voice", voiceSel.value);
    followVoiceLanguage();
    sendVoice();
  });

  loadVoices();
  connect();
})();
