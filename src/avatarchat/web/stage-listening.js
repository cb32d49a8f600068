// avatarchat listening on the stage: while the person speaks, the avatar plays its listening loop (rendered once per
// avatar by the server: eyes on the camera, a head tilt, slow nods, a brow raise, breathing) and nods at the
// person's pauses and stressed syllables. listening.js decides when, from the microphone's 20 ms levels that
// voice.js hands over; this file draws it:
// - the loop is a fourth <video> layer between the idle loop and the clips; it fades in over the idle loop (300 ms,
//   the layers' opacity transition) from its first frame, the rest frame, and fades out again, so nothing jumps;
// - a nod is a short transform of the visible loops (down a little and back), added on top of whatever transform
//   the stage has (the "answer coming" cue) with the Web Animations API, so it starts and ends at rest;
// - once the person stops, the avatar keeps listening while the answer is on its way, and stops when the answer's
//   first clip fades in over it, or when no answer comes.
(() => {
  "use strict";
  const FADE_MS = 300;  // as the layers' opacity transition (style.css)
  const FRAME_MS = 20;  // one level per 20 ms (mic-worklet.js)
  const NOD_MS = 600;
  const MAX_STATS = 500;
  const app = window.avatarchat;
  const stage = document.getElementById("layers");
  const loop = document.getElementById("listen"), idle = document.getElementById("idle");
  const listener = window.AvatarListening.createListener();
  const stats = app.stats.listening = { changes: [], nods: [] };
  const remember = (list, item) => { list.push(item); if (list.length > MAX_STATS) list.splice(0, list.length - MAX_STATS); };
  const still = window.matchMedia("(prefers-reduced-motion: reduce)");
  let heard = 0;      // ms of audio the listener has been given
  let on = false;     // the stage shows the listening
  let leaving = null; // the timer that pauses the loop once it has faded out
  let handing = null; // the timer that ends the listening once the answer's clip has faded in over it

  const avatarSpeaking = () => app.player.active !== null;  // a reply clip plays (or fades in)
  const thinking = () => stage.classList.contains("thinking");

  function show(value, why, onsetAt) {
    if (value === on) return;
    on = value;
    clearTimeout(leaving);
    // From its first frame, the rest frame; one still fading out (the person spoke again at once) plays on instead.
    if (on && loop.readyState >= 2 && loop.paused) { loop.currentTime = 0; loop.play().catch(() => {}); }
    stage.classList.toggle("listening", on);
    remember(stats.changes, { on, at: performance.now(), why, onsetAt });
    if (!on) leaving = setTimeout(() => { loop.pause(); loop.currentTime = 0; }, FADE_MS + 50);
  }

  // The listener says the person has gone quiet (or the microphone stopped): keep listening while an answer is on
  // its way, unless it is already playing.
  function quiet(why) {
    if (avatarSpeaking()) handOver();
    else if (!thinking()) show(false, why);
  }

  // The answer's clip fades in over the loop (300 ms); the loop goes once it is hidden, so the stage never shows the
  // idle loop between them.
  function handOver() {
    if (!on || handing !== null) return;
    handing = setTimeout(() => {
      handing = null;
      if (avatarSpeaking()) show(false, "answer");
    }, FADE_MS);
  }

  function nod(ev) {
    remember(stats.nods, { at: performance.now(), audioMs: ev.at, why: ev.why, strength: ev.strength });
    if (still.matches) return;
    const dip = (1.0 * ev.strength).toFixed(2), grow = (1 + 0.008 * ev.strength).toFixed(4);
    const frames = [{ transform: "translateY(0)" }, { transform: `translateY(${dip}%) scale(${grow})`, offset: 0.4 },
                    { transform: "translateY(0)" }];
    for (const layer of [idle, loop]) layer.animate(frames, { duration: NOD_MS, easing: "ease-in-out", composite: "add" });
  }

  // voice.js: one level (RMS, full scale 1) per 20 ms of captured audio, or null when the microphone is not the
  // person's any more (turned off, or the hold-to-talk button released).
  app.hearLevel = (rms) => {
    const events = rms === null ? listener.reset() : listener.frame(rms, (heard += FRAME_MS), avatarSpeaking());
    for (const ev of events) {
      if (ev.type === "nod") nod(ev);
      else if (ev.on) show(true, "speech", performance.now() - (ev.at - ev.since));
      else quiet(rms === null ? "microphone" : "quiet");
    }
    if (on && avatarSpeaking()) handOver();
  };

  // The answer's first clip starts (the "answer coming" cue ends then), or no answer comes: stop listening, after
  // the clip has faded in over the loop.
  new MutationObserver(() => {
    if (!on || thinking()) return;
    if (avatarSpeaking()) handOver();
    else if (!listener.active) show(false, "no answer");
  }).observe(stage, { attributes: true, attributeFilter: ["class"] });

  // The loop is shown only once it can show its first frame; one that loads while the avatar listens fades in.
  loop.addEventListener("loadeddata", () => {
    loop.classList.add("ready");
    if (on) { loop.currentTime = 0; loop.play().catch(() => {}); }
  });
  if (loop.readyState >= 2) loop.classList.add("ready");
  app.setListenLoop = (url) => {
    if (new URL(url, location.href).href === loop.src) return;
    loop.classList.remove("ready");
    loop.src = url;
    loop.load();
  };
})();
