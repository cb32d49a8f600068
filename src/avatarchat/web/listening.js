// avatarchat listening: when the avatar should show that it listens, and when it nods, from the microphone's level.
// No DOM here: the page (stage-listening.js) feeds it one level every 20 ms of captured audio (mic-worklet.js) and
// draws what it answers, so the same code runs in the browser and under `node --test` (tests/web/listening.test.js)
// and in benchmarks/listening.py.
//
// Why on the page and not from the server's `vad` events: the page has the audio first. A level every 20 ms and
// two loud ones in a row start the listening 40-60 ms after the person starts, where the server's VAD answers after
// its 64 ms window, the 60 ms frame it arrives in and the trip back. The server's VAD still decides what a turn is.
//
// Rules (issue 20): speech is a level above the room's floor (times `floorRatio`, and at least `minLevel`) for
// `onsetFrames` frames; a pause is `pauseMs` below that (with hysteresis). The avatar listens from the first loud
// frames until `holdMs` of quiet, nods at each pause that ends at least `minSpeechMs` of speech, and nods more
// lightly on a stressed syllable (a level peak well above the speech's running level). Never while the avatar
// itself speaks: what the microphone hears then is (the echo of) the avatar, or an interruption that the server
// handles; once the avatar stops, a person still speaking is listened to at once.
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.AvatarListening = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const DEFAULTS = {
    frameMs: 20,        // one level per this much audio
    minLevel: 0.01,     // RMS (full scale 1) that is never speech: about -40 dBFS, above a quiet room
    floorRatio: 3.5,    // speech is this many times louder than the room's floor
    offRatio: 0.5,      // ...and stays speech until it falls below this share of that threshold
    onsetFrames: 2,     // loud frames in a row that start speech (one click is not speech)
    pauseMs: 200,       // quiet this long after speech is a pause (shorter gaps are between words)
    minSpeechMs: 600,   // a pause after at least this much speech gets a nod
    nodGapMs: 900,      // at least this long between two pause nods (a stressed-syllable nod does not hold one off)
    stressRatio: 1.7,   // a level peak this many times the speech's running level is a stressed syllable
    stressGapMs: 1800,  // stressed-syllable nods are rarer than pause nods
    holdMs: 1500,       // quiet this long ends the listening (the page may hold it while an answer comes)
  };

  function createListener(options = {}) {
    const opt = { ...DEFAULTS, ...options };
    let floor = null;        // the room's level, followed while nobody speaks
    let loudRun = 0;         // loud frames in a row, before speech starts
    let speaking = false;    // the person is speaking (between onset and pause)
    let runStart = 0;        // when this stretch of speech began (t of its first loud frame)
    let quietSince = null;   // when the level fell, within speech
    let lastLoud = -Infinity;
    let lastNod = -Infinity;       // any nod
    let lastPauseNod = -Infinity;
    let active = false;      // the avatar is listening
    let fast = 0, slow = 0, prevFast = 0, rising = false;  // level envelopes within speech, for stressed syllables

    function threshold() { return Math.max(opt.minLevel, (floor || 0) * opt.floorRatio); }

    function follow(rms) {  // the floor falls fast and rises slowly, so speech never becomes the floor
      floor += (rms < floor ? 0.3 : 0.01) * (rms - floor);
    }

    function nod(out, t, strength, why) {
      lastNod = t;
      if (why === "pause") lastPauseNod = t;
      out.push({ type: "nod", at: t, strength, why });
    }

    // One frame of `rms` ending at `t` (ms of captured audio); `avatarSpeaking`: a reply is playing. Returns what
    // the page should do now: {type: "listen", on, at, since} and {type: "nod", at, strength, why}.
    function frame(rms, t, avatarSpeaking = false) {
      const out = [];
      if (floor === null) { floor = rms; return out; }  // the first level only tells what the room sounds like
      const on = threshold();
      if (!speaking) {
        loudRun = rms > on ? loudRun + 1 : 0;
        if (loudRun >= opt.onsetFrames) {
          speaking = true;
          runStart = t - (loudRun - 1) * opt.frameMs;
          quietSince = null;
          lastLoud = t;
          fast = slow = prevFast = rms;
          rising = false;
        } else if (!avatarSpeaking && loudRun === 0) {
          follow(rms);
        }
      } else if (rms > on * opt.offRatio) {
        lastLoud = t;
        quietSince = null;
      } else {
        if (quietSince === null) quietSince = t - opt.frameMs;  // the level fell during this frame
        if (t - quietSince >= opt.pauseMs) {
          speaking = false;
          loudRun = 0;
          const spoke = quietSince - runStart;
          if (active && !avatarSpeaking && spoke >= opt.minSpeechMs && t - lastPauseNod >= opt.nodGapMs) {
            nod(out, t, 1, "pause");
          }
        }
      }
      if (speaking && quietSince === null) {
        // Stressed syllables: a peak of the fast envelope well above the slow one, some way into the speech.
        prevFast = fast;
        fast += 0.5 * (rms - fast);
        const peaked = rising && fast < prevFast;
        rising = fast > prevFast;
        if (peaked && prevFast > opt.stressRatio * slow && t - runStart >= 300 && active && !avatarSpeaking
            && t - lastNod >= opt.stressGapMs) {
          nod(out, t, 0.5, "stress");
        }
        slow += 0.04 * (rms - slow);
      }
      if (avatarSpeaking) {
        if (active) { active = false; out.push({ type: "listen", on: false, at: t }); }
      } else if (!active && speaking) {
        active = true;
        out.push({ type: "listen", on: true, at: t, since: runStart });
      } else if (active && !speaking && t - lastLoud >= opt.holdMs) {
        active = false;
        out.push({ type: "listen", on: false, at: t });
      }
      return out;
    }

    // The microphone stopped: forget the speech in progress (the floor is kept for the next time).
    function reset() {
      const out = active ? [{ type: "listen", on: false, at: null }] : [];
      speaking = active = false;
      loudRun = 0;
      quietSince = null;
      return out;
    }

    return {
      frame, reset,
      get active() { return active; },
      get speaking() { return speaking; },
      get threshold() { return threshold(); },
    };
  }

  // Levels of 16 kHz int16 (or float) samples, one RMS per `frameMs` (as mic-worklet.js posts them): for tests
  // and benchmarks that feed known audio through the same rules.
  function levels(samples, rate = 16000, frameMs = DEFAULTS.frameMs) {
    const n = Math.round(rate * frameMs / 1000);
    const scale = samples instanceof Int16Array ? 32768 : 1;
    const out = [];
    for (let i = 0; i + n <= samples.length; i += n) {
      let sum = 0;
      for (let j = i; j < i + n; j++) { const x = samples[j] / scale; sum += x * x; }
      out.push(Math.sqrt(sum / n));
    }
    return out;
  }

  // Feed whole level series through a listener: every event, with `t` = the end of its frame in ms.
  // `speakingAt(t)`: whether the avatar speaks then.
  function run(levelsIn, options = {}, speakingAt = () => false) {
    const l = createListener(options);
    const frameMs = (options.frameMs || DEFAULTS.frameMs);
    const out = [];
    levelsIn.forEach((rms, k) => { const t = (k + 1) * frameMs; out.push(...l.frame(rms, t, speakingAt(t))); });
    return out;
  }

  return { createListener, levels, run, DEFAULTS };
});
