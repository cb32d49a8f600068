// avatarchat voice input: the microphone button. Hands-free by default (the server's VAD finds the turns);
// "hold" makes it hold-to-talk. Audio: getUserMedia (echo cancellation, noise suppression) -> AudioWorklet
// (mic-worklet.js: 16 kHz mono int16, 60 ms frames) -> binary frames on the session's WebSocket. The server
// answers with `vad` and `transcript` events; the final transcript becomes the person's chat line, and the
// server answers it as if it had been typed. Browsers allow microphones only on https:// or localhost.
// Hold-to-talk: one message per press, whatever its pauses: the press sends `voice_hold` (the server then ends
// the turn only on `voice_end`, sent on release); pointer events (mouse, pen, touch: the pointer is captured, so
// a finger sliding off the button does not end the turn) and Space held on the focused button.
// While the avatar speaks, the server's `yield` holds it (app.js) and a backchannel ("uh-huh") gets `resume`:
// its line in the log is then marked as such (no answer comes).
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const micBtn = $("mic"), holdBox = $("hold"), level = $("level"), holdLabel = $("holdlabel");
  const app = window.avatarchat;
  const stats = app.stats;
  stats.voice = { framesSent: 0, transcripts: [] };

  let stream = null, ctx = null, node = null;
  let on = false;        // hands-free: capturing and sending
  let holding = false;   // hold-to-talk: the button is down
  let line = null;       // the person's <li> of the turn being spoken
  let lastFinal = null;  // the person's <li> of the last finished turn (a `resume` marks it a backchannel)

  function explain(err) {
    if (!window.isSecureContext || !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
      return "The microphone only works on a secure page: open this page over https:// or on localhost.";
    }
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Microphone access was denied. Allow it in the browser's site settings to talk, or type instead.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone was found on this device.";
    return `The microphone could not start (${(err && err.message) || err}).`;
  }

  async function start() {
    if (stream) return true;
    if (!window.isSecureContext || !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
      app.addLine("error", `🎤 ${explain(null)}`);
      return false;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      ctx = new AudioContext();
      await ctx.audioWorklet.addModule("/static/mic-worklet.js");
      node = new AudioWorkletNode(ctx, "pcm16k");
      node.port.onmessage = (e) => (e.data.pcm ? onFrame(e.data) : onLevel(e.data.level));
      ctx.createMediaStreamSource(stream).connect(node);
      return true;
    } catch (err) {
      stop();
      app.addLine("error", `🎤 ${explain(err)}`);
      return false;
    }
  }

  function stop() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (ctx) ctx.close().catch(() => {});
    stream = ctx = node = null;
    level.style.transform = "scaleX(0)";
    if (app.hearLevel) app.hearLevel(null);
  }

  // Every 20 ms of captured audio: the avatar's listening (stage-listening.js) follows the person's voice while the
  // microphone is theirs (hands-free on, or the button held); otherwise it forgets what it heard.
  function onLevel(rms) {
    if (app.hearLevel) app.hearLevel(on || holding ? rms : null);
  }

  function onFrame({ pcm, rms }) {
    level.style.transform = `scaleX(${Math.min(1, rms * 8).toFixed(3)})`;
    if ((on || holding) && app.send(pcm)) stats.voice.framesSent += 1;
  }

  function setOn(value) {
    on = value;
    micBtn.classList.toggle("live", on);
    micBtn.setAttribute("aria-pressed", String(on));
  }

  micBtn.addEventListener("click", async () => {
    if (holdBox.checked) return;
    if (on) { setOn(false); stop(); app.send(JSON.stringify({ type: "voice_end" })); return; }
    if (await start()) setOn(true);
  });
  const press = async (e) => {
    if (!holdBox.checked || holding) return;
    e.preventDefault();
    if (e.pointerId !== undefined && micBtn.setPointerCapture) {
      try { micBtn.setPointerCapture(e.pointerId); } catch { /* not an active pointer */ }
    }
    holding = true;
    micBtn.classList.add("live");
    micBtn.setAttribute("aria-pressed", "true");
    app.send(JSON.stringify({ type: "voice_hold" }));
    if (!(await start())) { holding = false; micBtn.classList.remove("live"); micBtn.setAttribute("aria-pressed", "false"); }
  };
  const release = () => {
    if (!holding) return;
    holding = false;
    micBtn.classList.remove("live");
    micBtn.setAttribute("aria-pressed", "false");
    app.send(JSON.stringify({ type: "voice_end" }));
  };
  micBtn.addEventListener("pointerdown", press);
  for (const t of ["pointerup", "pointercancel", "lostpointercapture"]) micBtn.addEventListener(t, release);
  micBtn.addEventListener("contextmenu", (e) => { if (holdBox.checked) e.preventDefault(); });  // a long touch
  micBtn.addEventListener("keydown", (e) => {
    if (e.code !== "Space" && e.key !== " ") return;
    if (!holdBox.checked) return;
    e.preventDefault();  // no click, no scrolling
    if (!e.repeat) press(e);
  });
  micBtn.addEventListener("keyup", (e) => {
    if ((e.code === "Space" || e.key === " ") && holdBox.checked) { e.preventDefault(); release(); }
  });
  micBtn.addEventListener("blur", release);
  holdBox.addEventListener("change", () => {
    if (on) { setOn(false); app.send(JSON.stringify({ type: "voice_end" })); }
    micBtn.title = holdBox.checked ? "Hold to talk" : "Talk (hands-free)";
  });

  // Server events of voice input.
  app.voiceEvent = (ev) => {
    if (ev.type === "vad" && ev.state === "speech") {
      micBtn.classList.add("hearing");  // a speaking avatar holds on the server's `yield` (app.js)
    } else if (ev.type === "vad") {
      micBtn.classList.remove("hearing");
    } else if (ev.type === "transcript") {
      if (!line) { line = app.addLine("user partial", ""); }
      line.textContent = ev.text;
      if (ev.final) {
        stats.voice.transcripts.push(ev.text);
        if (ev.text) line.classList.remove("partial"); else line.remove();
        lastFinal = ev.text ? line : null;
        line = null;
      }
    } else if (ev.type === "resume" && lastFinal) {
      lastFinal.classList.add("backchannel");  // said while the avatar spoke, and not a question: no answer
      lastFinal.title = "Heard as a backchannel: the avatar went on";
      lastFinal = null;
    }
  };

  fetch("/healthz").then((r) => r.json()).then((h) => {
    if (h.voice_input === false) { micBtn.hidden = true; holdLabel.hidden = true; }
  }).catch(() => {});
})();
