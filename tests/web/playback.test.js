// Unit tests of the page's playback state machine (src/avatarchat/web/playback.js), without a server or a browser:
// a fake pair of clip layers, fake timers and a fake probe. Run by `node --test tests/web/` (tests/test_web_units.py).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { createPlayer, createReportQueue, probeClip } = require(path.join(__dirname, "../../src/avatarchat/web/playback.js"));

// Two fake <video> layers: what is loaded, which plays; the test decides when a clip plays, ends or fails.
function rig({ probe = "ok", playRejects = null } = {}) {
  let clock = 0;
  const timers = [];
  const log = [];
  const layers = [{ url: null, time: 0, paused: true }, { url: null, time: 0, paused: true }];
  const media = {
    load(slot, url, at = 0) { layers[slot] = { url, time: at, paused: true }; log.push(["load", slot, url, at]); },
    play(slot) {
      log.push(["play", slot, layers[slot].url]);
      if (playRejects) { const e = new Error("refused"); e.name = playRejects; return Promise.reject(e); }
      layers[slot].paused = false;
      return Promise.resolve();
    },
    enter(slot, prev) { log.push(["enter", slot, prev]); },
    leave(slot) { log.push(["leave", slot]); layers[slot].paused = true; },
    hold(slot) { log.push(["hold", slot, layers[slot].time]); layers[slot].paused = true; layers[slot].volume = 0.2; },
    release(slot) { log.push(["release", slot, layers[slot].time]); layers[slot].paused = false; layers[slot].volume = 1; },
    time: (slot) => layers[slot].time,
    paused: (slot) => layers[slot].paused,
    probe: (url) => { log.push(["probe", url]); return Promise.resolve(typeof probe === "function" ? probe(url) : probe); },
  };
  const reports = [], notices = [];
  const stats = { clipsPlayed: [], gapsMs: [], errors: [], lost: [], holds: [], releases: [] };
  const player = createPlayer(media, {
    now: () => clock,
    timers: { set: (f, ms) => { timers.push({ f, at: clock + ms }); return timers.length - 1; }, clear: (i) => { timers[i] = null; } },
    report: (type, reply, seq) => reports.push(`${type} ${reply}/${seq}`),
    notice: (kind, text) => notices.push(kind),
    stats,
  });
  const settle = () => new Promise((r) => setImmediate(r));
  async function advance(ms) {
    const until = clock + ms;
    await settle();
    for (;;) {
      const due = timers.map((t, i) => [t, i]).filter(([t]) => t && t.at <= until).sort((a, b) => a[0].at - b[0].at)[0];
      if (!due) break;
      timers[due[1]] = null;
      clock = due[0].at;
      due[0].f();
      await settle();
    }
    clock = until;
    await settle();
  }
  const active = () => player.active;
  const playingUrl = () => (player.active === null ? null : layers[player.active].url);
  async function playOut() {  // the active clip plays to its end
    const slot = player.active;
    player.playing(slot);
    layers[slot].time = 1;
    player.ended(slot);
    await settle();
  }
  const clip = (reply, seq) => ({ type: "clip_ready", reply, seq, url: `/clips/${reply}-${seq}.mp4`, duration_s: 1 });
  return { player, media, layers, log, reports, notices, stats, advance, settle, active, playingUrl, playOut, clip,
           setProbe: (p) => { probe = p; }, tick: async () => { player.tick(); await settle(); } };
}

test("clips play in seq order whatever order they arrive in, then idle", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 1));
  assert.equal(r.active(), null, "seq 1 waits for seq 0");
  r.player.clip(r.clip("a", 0));
  await r.settle();
  assert.equal(r.playingUrl(), "/clips/a-0.mp4");
  r.player.done({ reply: "a", sentences: 2 });
  await r.playOut();
  assert.equal(r.playingUrl(), "/clips/a-1.mp4");
  await r.playOut();
  assert.equal(r.active(), null);
  assert.deepEqual(r.stats.clipsPlayed.map((c) => c.seq), [0, 1]);
  assert.deepEqual(r.reports, ["clip_started a/0", "clip_ended a/0", "clip_started a/1", "clip_ended a/1"]);
});

test("a failed download is retried once and plays: nothing is lost", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 0));
  r.player.clip(r.clip("a", 1));
  r.player.done({ reply: "a", sentences: 2 });
  await r.settle();
  await r.playOut();
  r.player.failed(r.active(), "download");  // seq 1's download broke
  await r.advance(10);
  assert.equal(r.log.filter((e) => e[0] === "load" && e[2] === "/clips/a-1.mp4").length, 2, "loaded again");
  assert.equal(r.playingUrl(), "/clips/a-1.mp4");
  await r.playOut();
  assert.deepEqual(r.stats.clipsPlayed.map((c) => c.seq), [0, 1]);
  assert.deepEqual(r.stats.lost, []);
});

test("a clip that fails twice is skipped with a notice; the next sentence and the next reply play", async () => {
  const r = rig({ probe: "retry" });  // e.g. a proxy answering 502
  for (const s of [0, 1, 2]) r.player.clip(r.clip("a", s));
  r.player.done({ reply: "a", sentences: 3 });
  await r.settle();
  await r.playOut();
  r.player.failed(r.active(), "download");
  await r.advance(2000);
  r.player.failed(r.active(), "download");  // the retry failed too
  await r.advance(2000);
  assert.deepEqual(r.stats.lost.map((l) => l.seq), [1]);
  assert.ok(r.notices.includes("lost"));
  assert.equal(r.playingUrl(), "/clips/a-2.mp4");
  await r.playOut();
  r.player.clip(r.clip("b", 0));
  await r.settle();
  assert.equal(r.playingUrl(), "/clips/b-0.mp4", "a later reply is spoken");
});

test("while the server cannot be reached nothing is counted; the clip plays once it is back", async () => {
  const r = rig({ probe: "offline" });
  r.player.clip(r.clip("a", 0));
  r.player.clip(r.clip("a", 1));
  await r.settle();
  await r.playOut();
  for (let i = 0; i < 5; i++) {  // every reload fails while the network is down
    if (r.active() !== null) r.player.failed(r.active(), "download");
    await r.advance(3000);
  }
  assert.deepEqual(r.stats.lost, []);
  assert.ok(r.notices.includes("waiting"));
  r.setProbe("ok");
  await r.advance(10000);
  assert.equal(r.playingUrl(), "/clips/a-1.mp4");
  assert.equal(r.active() !== null && !r.layers[r.active()].paused, true, "playing again");
  assert.ok(r.notices.includes("resumed"));
});

test("a clip the server no longer has (404) is skipped at once", async () => {
  const r = rig({ probe: (url) => (url.endsWith("a-1.mp4") ? "gone" : "ok") });
  for (const s of [0, 1, 2]) r.player.clip(r.clip("a", s));
  await r.settle();
  await r.playOut();
  r.player.failed(r.active(), "download");
  await r.advance(1);
  assert.deepEqual(r.stats.lost.map((l) => [l.seq, l.why]), [[1, "expired"]]);
  assert.equal(r.playingUrl(), "/clips/a-2.mp4");
});

test("a clip whose time stops moving is retried from where it stopped", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 0));
  await r.settle();
  const slot = r.active();
  r.player.playing(slot);
  r.layers[slot].time = 0.8;
  await r.tick();
  await r.advance(5000);  // no progress for 5 s while "playing"
  await r.tick();
  await r.advance(10);
  const reload = r.log.filter((e) => e[0] === "load").pop();
  assert.deepEqual(reload.slice(2), ["/clips/a-0.mp4", 0.8]);
});

test("a failed preload of the hidden layer costs nothing: it is loaded again when its turn comes", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 0));
  r.player.clip(r.clip("a", 1));
  await r.settle();
  const spare = r.active() === 0 ? 1 : 0;
  r.player.failed(spare, "download");
  await r.playOut();
  assert.equal(r.playingUrl(), "/clips/a-1.mp4");
  assert.equal(r.log.filter((e) => e[0] === "probe").length, 0);
});

test("a refused play() (autoplay) shows the idle loop and waits for a tap, then plays", async () => {
  const r = rig({ playRejects: "NotAllowedError" });
  r.player.clip(r.clip("a", 0));
  await r.settle();
  assert.equal(r.player.locked, true);
  assert.ok(r.log.some((e) => e[0] === "leave"), "the clip layer is hidden, idle shows");
  assert.deepEqual(r.stats.lost, []);
  r.media.play = (slot) => { r.layers[slot].paused = false; return Promise.resolve(); };
  r.player.unlock();
  await r.settle();
  assert.equal(r.player.locked, false);
  assert.equal(r.playingUrl(), "/clips/a-0.mp4");
  assert.equal(r.layers[r.active()].paused, false);
});

test("a play() that fails for another reason is a failure, not a hang", async () => {
  const r = rig({ playRejects: "NotSupportedError", probe: "gone" });
  r.player.clip(r.clip("a", 0));
  r.player.clip(r.clip("a", 1));
  await r.settle();
  await r.advance(10);
  assert.deepEqual(r.stats.lost.map((l) => l.seq).slice(0, 1), [0]);
});

test("cancelling the playing reply stops a retry under way and plays the next reply", async () => {
  const r = rig({ probe: "offline" });
  r.player.clip(r.clip("a", 0));
  await r.settle();
  r.player.failed(r.active(), "download");
  await r.advance(10);
  r.player.cancel("a");
  r.setProbe("ok");
  r.player.clip(r.clip("b", 0));
  await r.advance(20000);
  assert.equal(r.playingUrl(), "/clips/b-0.mp4");
  assert.equal(r.log.filter((e) => e[0] === "load" && e[2] === "/clips/a-0.mp4").length, 1, "a is not retried");
});

test("a seq that never comes is skipped after a while, so the rest of the reply plays", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 0));
  r.player.clip(r.clip("a", 2));
  await r.settle();
  await r.playOut();
  assert.equal(r.active(), null);
  for (let i = 0; i < 10; i++) { await r.advance(1000); await r.tick(); }
  assert.equal(r.playingUrl(), "/clips/a-2.mp4");
});

test("a reloaded page restarts the sentence that was cut short, and resumes after one that ended", async () => {
  const r = rig();
  const clips = [0, 1, 2].map((s) => r.clip("a", s));
  r.player.resume({ replies: [{ reply: "a", clips, failed: [], played: [0, 1], ended: [0], done: true, sentences: 3 }] });
  await r.settle();
  assert.equal(r.playingUrl(), "/clips/a-1.mp4");
  const q = rig();
  q.player.resume({ replies: [{ reply: "a", clips, failed: [], played: [0, 1], ended: [0, 1], done: true, sentences: 3 }] });
  await q.settle();
  assert.equal(q.playingUrl(), "/clips/a-2.mp4");
});

test("reports made while the socket is down are sent in order when it is back, bounded", () => {
  const q = createReportQueue(3);
  let open = false;
  const sent = [];
  const send = (m) => { if (!open) return false; sent.push(m); return true; };
  for (const m of ["1", "2", "3", "4"]) { q.push(m); q.flush(send); }
  assert.deepEqual(sent, []);
  assert.equal(q.length, 3, "the oldest is dropped past the limit");
  open = true;
  q.flush(send);
  assert.deepEqual(sent, ["2", "3", "4"]);
  assert.equal(q.length, 0);
});

test("the probe tells a gone clip, a refused one, a failed request and an outage apart", async () => {
  const fake = (clip, health) => async (url) => {
    const answer = url === "/healthz" ? health : clip;
    if (answer === "throw") throw new TypeError("Failed to fetch");
    return { ok: answer >= 200 && answer < 300, status: answer };
  };
  assert.equal(await probeClip("/clips/a.mp4", fake(206, 200)), "ok");
  assert.equal(await probeClip("/clips/a.mp4", fake(404, 200)), "gone");
  assert.equal(await probeClip("/clips/a.mp4", fake(410, 200)), "gone");
  assert.equal(await probeClip("/clips/a.mp4", fake(429, 200)), "retry");
  assert.equal(await probeClip("/clips/a.mp4", fake(502, 200)), "retry");
  // Only the clip's request fails (a proxy drops it), the server answers: this clip's failure, counted.
  assert.equal(await probeClip("/clips/a.mp4", fake("throw", 200)), "retry");
  // Nothing answers: an outage, during which nothing is counted.
  assert.equal(await probeClip("/clips/a.mp4", fake("throw", "throw")), "offline");
});

test("a hold pauses the playing clip at its frame and starts nothing; release goes on from that frame", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 0));
  r.player.clip(r.clip("a", 1));
  r.player.done({ reply: "a", sentences: 2 });
  await r.settle();
  r.player.playing(r.active());
  r.layers[r.active()].time = 0.7;
  r.player.hold();
  assert.equal(r.player.held, true);
  assert.deepEqual(r.log.filter((e) => e[0] === "hold"), [["hold", 0, 0.7]]);
  assert.equal(r.layers[0].paused, true);
  assert.equal(r.layers[0].url, "/clips/a-0.mp4", "the held clip stays on its layer: no black frame, no jump");
  assert.ok(!r.log.some((e) => e[0] === "leave"), "held is not idle: the clip stays shown");
  await r.advance(5000);
  await r.tick();
  assert.equal(r.stats.errors.length, 0, "a held clip is not a stalled one");
  r.player.release();
  assert.deepEqual(r.log.filter((e) => e[0] === "release"), [["release", 0, 0.7]]);
  assert.equal(r.playingUrl(), "/clips/a-0.mp4");
  await r.playOut();
  assert.equal(r.playingUrl(), "/clips/a-1.mp4");
  assert.deepEqual(r.stats.holds.map((h) => [h.reply, h.seq, h.time]), [["a", 0, 0.7]]);
  assert.deepEqual(r.stats.releases.map((h) => [h.reply, h.seq, h.time]), [["a", 0, 0.7]]);
});

test("clips that arrive during a hold wait for the release", async () => {
  const r = rig();
  r.player.hold();
  r.player.clip(r.clip("a", 0));
  await r.settle();
  assert.equal(r.active(), null, "nothing starts while the avatar yields");
  r.player.release();
  await r.settle();
  assert.equal(r.playingUrl(), "/clips/a-0.mp4");
});

test("a cancel ends the hold: the held reply goes, the next one plays", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 0));
  await r.settle();
  r.player.playing(r.active());
  r.player.hold();
  r.player.cancel("a");
  assert.equal(r.player.held, false);
  assert.equal(r.active(), null);
  r.player.clip(r.clip("b", 0));
  await r.settle();
  assert.equal(r.playingUrl(), "/clips/b-0.mp4");
});

test("a hold that is never released ends by itself", async () => {
  const r = rig();
  r.player.clip(r.clip("a", 0));
  await r.settle();
  r.player.hold();
  await r.advance(16000);
  assert.equal(r.player.held, false);
  assert.equal(r.layers[r.active()].paused, false);
});
