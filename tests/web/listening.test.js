// Unit tests of the page's listening rules (src/avatarchat/web/listening.js): microphone levels in, "listen" and
// "nod" events out, without a browser. Run by `node --test tests/web/` (tests/test_web_units.py).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { createListener, levels, run, DEFAULTS } = require(path.join(__dirname, "../../src/avatarchat/web/listening.js"));

const F = DEFAULTS.frameMs;
const ROOM = 0.003;  // a quiet room, about -50 dBFS
// Levels of `ms` of room tone, and of speech: syllables (loud ~140 ms) with short dips between them (~60 ms), as
// connected speech has; the dips are shorter than a pause.
const quiet = (ms, level = ROOM) => Array.from({ length: Math.round(ms / F) }, (_, k) => level * (1 + 0.3 * Math.sin(k)));
function speech(ms, loud = 0.08) {
  const out = [];
  for (let k = 0; k < Math.round(ms / F); k++) out.push(k % 10 < 7 ? loud * (0.8 + 0.2 * Math.cos(k)) : 0.006);
  return out;
}
// Where each part of a level series starts, in ms.
function timeline(parts) {
  const at = [];
  let t = 0;
  for (const p of parts) { at.push(t); t += p.length * F; }
  return { levels: parts.flat(), at };
}
const nods = (events) => events.filter((e) => e.type === "nod");
const listens = (events) => events.filter((e) => e.type === "listen");

test("speech starts the listening within 60 ms, each pause after enough speech gets a nod within 300 ms", () => {
  const parts = [quiet(800), speech(1200), quiet(500), speech(900), quiet(2500)];
  const { levels: lv, at } = timeline(parts);
  const ev = run(lv);
  const on = listens(ev)[0];
  assert.equal(on.on, true);
  assert.ok(on.at - at[1] <= 60 && on.at > at[1], `listening at ${on.at}, speech at ${at[1]}`);
  const pauseNods = nods(ev).filter((e) => e.why === "pause");
  assert.equal(pauseNods.length, 2, JSON.stringify(ev));
  for (const [nod, pause] of [[pauseNods[0], at[2]], [pauseNods[1], at[4]]]) {
    const delay = nod.at - pause;
    assert.ok(delay >= DEFAULTS.pauseMs && delay <= 300, `nod ${delay} ms after the pause`);
    assert.equal(nod.strength, 1);
  }
  const off = listens(ev)[1];
  assert.equal(off.on, false);
  assert.ok(Math.abs(off.at - (at[4] + DEFAULTS.holdMs)) <= 2 * F, `listening ends at ${off.at}`);
  assert.equal(listens(ev).length, 2);
});

test("a quiet room, a click and a short breath start nothing", () => {
  const click = [0.3];
  const breath = [0.02];
  const ev = run([...quiet(3000), ...click, ...quiet(1000), ...breath, ...quiet(1000), ...quiet(2000, 0.0045)]);
  assert.deepEqual(ev, []);
});

test("a louder room raises the bar: its hum is not speech, speech over it is", () => {
  const hum = 0.012;  // above minLevel: only the followed floor keeps it from counting
  const parts = [quiet(3000, hum), speech(1000, 0.15), quiet(2500, hum)];
  const { levels: lv, at } = timeline(parts);
  const ev = run(lv);
  assert.equal(listens(ev)[0].on, true);
  assert.ok(listens(ev)[0].at - at[1] <= 60);
  assert.ok(ev.every((e) => e.at > at[1]), "nothing before the speech");
});

test("nothing while the avatar speaks; a person still speaking when it stops is listened to at once", () => {
  const parts = [quiet(500), speech(2000), quiet(400), speech(1000), quiet(2000)];
  const { levels: lv, at } = timeline(parts);
  assert.deepEqual(run(lv, {}, () => true), [], "the avatar speaks throughout");
  const stops = at[1] + 600;  // the avatar stops (a barge-in cancelled it) while the person speaks
  const ev = run(lv, {}, (t) => t < stops);
  const on = listens(ev)[0];
  assert.ok(on.on && on.at >= stops && on.at <= stops + F, `listening at ${on.at}, the avatar stopped at ${stops}`);
  assert.ok(nods(ev).every((e) => e.at >= stops));
  assert.ok(nods(ev).some((e) => e.why === "pause" && e.at - at[2] <= 300 && e.at > at[2]));
});

test("the avatar starting to speak ends the listening, with no nod after", () => {
  const parts = [quiet(500), speech(1500), quiet(300), speech(1500), quiet(1000)];
  const { levels: lv, at } = timeline(parts);
  const starts = at[3] + 200;  // its answer starts playing (a reply to something typed, say)
  const ev = run(lv, {}, (t) => t >= starts);
  const off = listens(ev).find((e) => !e.on);
  assert.ok(off && off.at >= starts && off.at <= starts + F);
  assert.ok(ev.every((e) => e.at <= starts + F), JSON.stringify(ev));
});

test("a pause after less than 0.6 s of speech gets no nod, but the listening still starts", () => {
  const ev = run([...quiet(500), ...speech(400), ...quiet(600), ...speech(300), ...quiet(2000)]);
  assert.equal(listens(ev)[0].on, true);
  assert.equal(nods(ev).filter((e) => e.why === "pause").length, 0, JSON.stringify(ev));
});

test("a stressed syllable gets a lighter nod, and such nods stay rare", () => {
  const even = speech(3000, 0.05);
  const stressed = even.slice();
  for (const k of [60, 61, 62, 63]) stressed[k] = 0.25;  // one loud syllable 1.2 s in
  const calm = nods(run([...quiet(500), ...even, ...quiet(100), ...even, ...quiet(2000)]));
  assert.equal(calm.filter((e) => e.why === "stress").length, 0, JSON.stringify(calm));
  const ev = nods(run([...quiet(500), ...stressed, ...quiet(2000)]));
  const stress = ev.filter((e) => e.why === "stress");
  assert.equal(stress.length, 1, JSON.stringify(ev));
  assert.ok(stress[0].strength < 1);
  const peakAt = 500 + 60 * F;
  assert.ok(stress[0].at > peakAt && stress[0].at - peakAt <= 120, `stress nod at ${stress[0].at}`);
});

test("reset (the microphone stopped) ends the listening", () => {
  const l = createListener();
  let t = 0;
  for (const v of [...quiet(300), ...speech(300)]) l.frame(v, (t += F));
  assert.equal(l.active, true);
  assert.deepEqual(l.reset().map((e) => [e.type, e.on]), [["listen", false]]);
  assert.equal(l.active, false);
  assert.deepEqual(l.reset(), []);
});

test("levels are the RMS of each 20 ms of 16 kHz audio, as the microphone worklet posts them", () => {
  const pcm = new Int16Array(16000);
  for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(16384 * Math.sin((2 * Math.PI * 200 * i) / 16000));
  const lv = levels(pcm);
  assert.equal(lv.length, 50);
  for (const v of lv) assert.ok(Math.abs(v - 0.5 / Math.SQRT2) < 1e-3, v);
});
