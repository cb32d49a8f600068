// avatarchat microphone worklet: the capture rate (44.1/48 kHz…) -> 16 kHz mono int16, in 60 ms frames.
// Each input sample block is low-passed (a moving average over one output period) and linearly interpolated
// at 16 kHz; every 960 samples go to the page as one Int16Array (sent as one binary WebSocket frame), with the
// frame's RMS level for the meter. Every 20 ms it also posts that stretch's RMS alone ({level}), which the page's
// listening rules (listening.js) follow: the avatar starts listening within a few of those, not a whole frame later.
// Loaded with audioWorklet.addModule from /static (CSP script-src 'self').
class Pcm16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000;   // input samples per output sample
    this.pos = 0;                     // position of the next output sample, in input samples since `prev`
    this.prev = 0;
    this.avg = 0;                     // one-pole low-pass state (anti-aliasing)
    this.alpha = Math.min(1, 16000 / sampleRate * 1.6);
    this.out = new Int16Array(960);
    this.n = 0;
    this.sum = 0;
    this.levelSum = 0;                // the current 20 ms (320 samples) for the listening level
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || !input.length) return true;
    const ch = input[0];
    for (let i = 0; i < ch.length; i++) {
      let x = ch[i];
      for (let c = 1; c < input.length; c++) x += input[c][i];
      x /= input.length;
      this.avg += this.alpha * (x - this.avg);
      const cur = this.avg;
      // output samples that fall between prev (position -1 + 1 = 0 … 1) and cur
      while (this.pos <= 1) {
        const y = this.prev + (cur - this.prev) * this.pos;
        const s = Math.max(-1, Math.min(1, y));
        this.out[this.n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        this.sum += s * s;
        this.levelSum += s * s;
        if (this.n % 320 === 0) {
          this.port.postMessage({ level: Math.sqrt(this.levelSum / 320) });
          this.levelSum = 0;
        }
        this.pos += this.step;
        if (this.n === this.out.length) {
          this.port.postMessage({ pcm: this.out.buffer, rms: Math.sqrt(this.sum / this.n) }, [this.out.buffer]);
          this.out = new Int16Array(960);
          this.n = 0;
          this.sum = 0;
        }
      }
      this.pos -= 1;
      this.prev = cur;
    }
    return true;
  }
}
registerProcessor("pcm16k", Pcm16k);
