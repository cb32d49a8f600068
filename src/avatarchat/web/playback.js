// avatarchat playback: which clip plays next, and what happens when one fails. No DOM here: the page gives it a
// `media` adapter over its two clip layers (slots 0 and 1) and the idle loop, so the same code runs in the browser
// and under `node --test` (tests/web/playback.test.js).
//
// Rules (issue 17): clips play in seq order per reply, replies in the order they started; a seq the server never
// delivers is skipped after `missingMs`; a clip whose download or playback fails is retried once and, if it fails
// again, skipped with a notice; while the network is down (the probe cannot reach the server) nothing is counted
// as a failure, so an outage costs no sentence; a clip the server no longer has (404) is skipped at once. A refused
// play() (autoplay policy) is not a failure: the idle loop shows and the page asks for a tap. Reports made while the
// socket is down wait in a bounded queue.
//
// Turn-taking (issue 20): `hold()` (the server's `yield`: the person started speaking) ducks and pauses the clip
// at its frame, which stays on screen (no black frame, no jump), and starts nothing new; `release()` (the
// server's `resume`: it was a backchannel) goes on from that very frame, so no word is lost or said twice. A
// cancel (`speech_cancelled`: a real interruption) releases too. A hold nobody releases ends after `holdMaxMs`.
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.AvatarPlayback = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const DEFAULTS = {
    missingMs: 8000,     // a missing seq with later clips ready: skip it after this long
    stallMs: 4000,       // the active clip's time has not moved for this long: treat it as failed
    retryMs: 1000,       // first wait before a retry; doubles while the server is unreachable
    maxRetryMs: 8000,
    holdMaxMs: 15000,    // a hold whose resume or cancel never came (a lost socket) ends by itself
  };

  function createPlayer(media, hooks = {}, options = {}) {
    const opt = { ...DEFAULTS, ...options };
    const now = hooks.now || (() => Date.now());
    const timers = hooks.timers || { set: (f, ms) => setTimeout(f, ms), clear: (t) => clearTimeout(t) };
    const report = hooks.report || (() => {});
    const notice = hooks.notice || (() => {});
    const gesture = hooks.gesture || (() => {});
    const stats = hooks.stats || { clipsPlayed: [], gapsMs: [], errors: [], lost: [] };
    const remember = hooks.remember || ((list, item) => list.push(item));

    const order = [];            // reply ids, oldest first
    const replies = new Map();   // id -> { next, pending: Map(seq -> ev), failed: Set, done, sentences, cancelled }
    const slots = [null, null];  // what each clip layer holds: { ev, attempts }
    let active = null;           // slot playing now, or null (idle)
    let lastEndedAt = null;
    let blockedSince = null;     // when the head reply started waiting for a seq that may never come
    let recovery = null;         // { slot, timer, wait } while the active clip is being retried
    let watch = null;            // { slot, time, since }: the active clip's progress, for stall detection
    let locked = false;          // play() was refused by the autoplay policy: waiting for a tap
    let held = null;             // { timer } while the avatar yields to the person (see hold())

    const other = (slot) => (slot === 0 ? 1 : 0);
    const holds = (slot, ev) => slots[slot] && slots[slot].ev.reply === ev.reply && slots[slot].ev.seq === ev.seq;

    function state(id) {
      if (!replies.has(id)) {
        replies.set(id, { next: 0, pending: new Map(), failed: new Set(), done: false, sentences: null, cancelled: false });
        order.push(id);
      }
      return replies.get(id);
    }
    function dropHead() { replies.delete(order.shift()); }

    // The clip to play next, or null; drops replies played out or cancelled, steps over failed sentences.
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

    function load(slot, ev) {
      slots[slot] = { ev, attempts: 0 };
      media.load(slot, ev.url);
    }

    function preloadNext() {
      const ev = nextClip();
      if (!ev) return;
      const spare = active === null ? 0 : other(active);
      if (!holds(spare, ev)) load(spare, ev);
    }

    function startNext() {
      if (held) return false;
      const ev = nextClip();
      if (!ev) return false;
      blockedSince = null;
      const r = replies.get(ev.reply);
      r.pending.delete(ev.seq);
      r.next += 1;
      const prev = active;
      const slot = prev === null ? 0 : other(prev);
      if (!holds(slot, ev)) load(slot, ev);
      active = slot;
      watch = { slot, time: -1, since: now() };
      if (!locked) media.enter(slot, prev);
      else if (prev !== null) media.leave(prev);
      play(slot);
      preloadNext();
      return true;
    }

    function play(slot) {
      if (locked) return;
      Promise.resolve(media.play(slot)).catch((err) => {
        if (slot !== active) return;
        remember(stats.errors, String(err));
        if (err && err.name === "NotAllowedError") {
          // Autoplay refused: show the breathing idle loop behind the "tap to hear" prompt, not a frozen clip.
          locked = true;
          media.leave(slot);
          gesture(true);
        } else if (!(err && err.name === "AbortError")) {
          failed(slot, "play");
        }
      });
    }

    function backToIdle() {
      const slot = active;
      active = null;
      watch = null;
      if (slot !== null && !locked) media.leave(slot);
    }

    // The active clip is over (played out, or given up): report it, then the next clip or idle.
    function finish(slot, played) {
      const ev = slots[slot].ev;
      if (played) {
        lastEndedAt = now();
        report("clip_ended", ev.reply, ev.seq);
        remember(stats.clipsPlayed, { reply: ev.reply, seq: ev.seq, at: lastEndedAt, url: ev.url });
      }
      slots[slot] = null;
      if (!startNext()) {
        backToIdle();
        nextClip();
        if (!replies.has(ev.reply)) lastEndedAt = null;  // a finished reply is not a gap
      }
    }

    // A clip layer failed (media error, refused play(), a stall). A spare layer's failed preload only clears it:
    // it is loaded again when its turn comes. The active clip is retried; see the rules at the top.
    function failed(slot, why) {
      const held = slots[slot];
      if (!held) return;
      if (slot !== active) { slots[slot] = null; return; }
      if (recovery) return;  // a retry is already under way
      recovery = { slot, timer: null, wait: opt.retryMs };
      remember(stats.errors, `clip ${held.ev.seq} of ${held.ev.reply}: ${why}`);
      check(slot, held);
    }

    function check(slot, held) {
      Promise.resolve(media.probe(held.ev.url)).then((verdict) => {
        if (!recovery || recovery.slot !== slot || slots[slot] !== held) return;  // cancelled or moved on
        if (verdict === "gone") return giveUp(slot, "expired");
        if (verdict === "offline") {
          // The server cannot be reached: wait for it, counting nothing.
          notice("waiting", "The connection dropped; the avatar will go on when it is back.");
          recovery.timer = timers.set(() => check(slot, held), recovery.wait);
          recovery.wait = Math.min(opt.maxRetryMs, recovery.wait * 2);
          return;
        }
        held.attempts += 1;
        if (held.attempts > 1) return giveUp(slot, "failed twice");
        recovery.timer = timers.set(() => retry(slot, held), verdict === "retry" ? opt.retryMs : 0);
      }, () => giveUp(slot, "probe failed"));
    }

    function retry(slot, held) {
      if (!recovery || slots[slot] !== held) return;
      recovery = null;
      const at = media.time(slot);
      media.load(slot, held.ev.url, at);
      watch = { slot, time: -1, since: now() };
      notice("resumed", null);
      play(slot);
    }

    function giveUp(slot, why) {
      const held = slots[slot];
      recovery = null;
      if (!held) return;
      remember(stats.lost, { reply: held.ev.reply, seq: held.ev.seq, why });
      notice("lost", "One sentence could not be played, so the avatar skipped it; its text is in the chat.");
      finish(slot, false);
    }

    function cancelRecovery() {
      if (recovery && recovery.timer !== null) timers.clear(recovery.timer);
      recovery = null;
    }

    // ---- what the page tells the player -------------------------------------------------------------------
    function ended(slot) {
      if (slot !== active || recovery) return;
      finish(slot, true);
    }

    function playing(slot) {
      if (slot !== active || !slots[slot]) return;
      const ev = slots[slot].ev;
      report("clip_started", ev.reply, ev.seq);
      if (lastEndedAt !== null) remember(stats.gapsMs, now() - lastEndedAt);
      lastEndedAt = null;
    }

    // Called about once a second: skips a seq that never comes, and catches a clip that stopped advancing.
    function tick() {
      if (active !== null) {
        blockedSince = null;
        if (locked || recovery || !watch || watch.slot !== active) return;
        const t = media.time(active);
        if (t !== watch.time || media.paused(active)) { watch.time = t; watch.since = now(); return; }
        if (now() - watch.since > opt.stallMs) failed(active, "stalled");
        return;
      }
      if (!order.length) { blockedSince = null; return; }
      const r = replies.get(order[0]);
      const later = [...r.pending.keys()].some((s) => s > r.next) || (r.done && r.sentences !== null);
      if (!later || nextClip()) { blockedSince = null; return; }
      if (blockedSince === null) blockedSince = now();
      else if (now() - blockedSince > opt.missingMs) {
        r.failed.add(r.next);
        blockedSince = null;
        startNext();
      }
    }

    function unlock() {
      locked = false;
      gesture(false);
      if (active !== null) { media.enter(active, null); if (!held) play(active); } else startNext();
    }

    // ---- turn-taking: the avatar yields while the person speaks --------------------------------------------
    function hold() {
      if (held) return;
      held = { timer: timers.set(() => release(), opt.holdMaxMs) };
      if (active !== null && !locked) media.hold(active);
      remember(stats.holds || [], { at: now(), ...position() });
    }

    function release() {
      if (!held) return;
      timers.clear(held.timer);
      held = null;
      remember(stats.releases || [], { at: now(), ...position() });
      if (active !== null) { if (!locked) media.release(active); } else startNext();
    }

    function position() {
      const ev = active !== null && slots[active] ? slots[active].ev : null;
      return ev ? { reply: ev.reply, seq: ev.seq, time: media.time(active) } : { reply: null, seq: null, time: null };
    }

    // ---- what the server tells the player -----------------------------------------------------------------
    function clip(ev) {
      const r = state(ev.reply);
      if (r.cancelled || ev.seq < r.next) return;
      r.pending.set(ev.seq, ev);
      if (active === null) startNext(); else preloadNext();
    }

    function done(ev) {
      const r = state(ev.reply);
      r.done = true;
      r.sentences = ev.sentences ?? ev.clips;
      if (active === null) startNext();
    }

    function cancel(id) {
      const wasHeld = held !== null;
      if (held) { timers.clear(held.timer); held = null; }  // a real interruption: nothing is held any more
      const r = state(id);
      r.cancelled = true;
      r.pending.clear();
      if (active !== null && slots[active] && slots[active].ev.reply === id) {
        cancelRecovery();
        lastEndedAt = null;
        slots[active] = null;
        backToIdle();
      } else if (wasHeld && active !== null && !locked) {
        media.release(active);  // another reply's clip was held: it goes on
      }
      nextClip();
      if (active === null) startNext();
    }

    function cancelAll() { for (const id of [...order]) cancel(id); }

    function sentenceFailed(id, seq) {
      state(id).failed.add(seq);
      if (active === null) startNext();
    }

    // On (re)connect the server says which replies are still to be heard: resume them, forget the rest.
    function resume(snapshot) {
      const live = new Set(snapshot.replies.map((s) => s.reply));
      const playingReply = active !== null && slots[active] ? slots[active].ev.reply : null;
      for (const id of [...order]) {
        if (!live.has(id) && id !== playingReply) { replies.delete(id); order.splice(order.indexOf(id), 1); }
      }
      for (const s of snapshot.replies) {
        const fresh = !replies.has(s.reply);
        const r = state(s.reply);
        // A reloaded page: start again at the sentence that was playing (its words were cut short), not after it.
        if (fresh && s.played.length) {
          const last = Math.max(...s.played);
          r.next = (s.ended || []).includes(last) ? last + 1 : last;
        }
        for (const seq of s.failed) r.failed.add(seq);
        const current = active !== null && slots[active] ? slots[active].ev : null;
        for (const c of s.clips) {
          if (c.seq >= r.next && !(current && current.reply === s.reply && current.seq === c.seq)) r.pending.set(c.seq, c);
        }
        if (s.done) { r.done = true; r.sentences = s.sentences ?? s.clips.length; }
      }
      if (active === null) startNext(); else preloadNext();
    }

    return {
      clip, done, cancel, cancelAll, sentenceFailed, resume,
      ended, playing, failed, tick, unlock, hold, release,
      get active() { return active; },
      get held() { return held !== null; },
      get locked() { return locked; },
      get busy() { return active !== null || nextClip() !== null; },
      slotOf(slot) { return slots[slot] ? { ...slots[slot].ev } : null; },
      replies: () => [...order],
    };
  }

  // Playback reports wait here while the socket is down, oldest dropped first past `limit`.
  function createReportQueue(limit = 100) {
    const queue = [];
    return {
      push(msg) { queue.push(msg); if (queue.length > limit) queue.splice(0, queue.length - limit); },
      flush(send) { while (queue.length && send(queue[0])) queue.shift(); },
      get length() { return queue.length; },
    };
  }

  // Why did a clip fail? Asked with `fetch` (the page's, or a fake): "ok": the server serves it, so the failure
  // was on the way; "gone": it no longer has it (404/410, its TTL passed); "retry": it answered otherwise (429, a
  // proxy's 5xx), or only this request failed while `health` answers; "offline": the server cannot be reached.
  async function probeClip(url, fetch, health = "/healthz") {
    try {
      const res = await fetch(url, { headers: { Range: "bytes=0-0" }, cache: "no-store" });
      if (res.ok) return "ok";
      return res.status === 404 || res.status === 410 ? "gone" : "retry";
    } catch {
      const up = await fetch(health, { cache: "no-store" }).then(() => true, () => false);
      return up ? "retry" : "offline";
    }
  }

  return { createPlayer, createReportQueue, probeClip, DEFAULTS };
});
