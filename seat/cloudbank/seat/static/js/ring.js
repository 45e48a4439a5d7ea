// The ring of an offered call: a two-tone WebAudio beep, repeated until stopped. No audio files,
// so the strict CSP needs no media source for it.

export class Ringer {
  constructor() {
    this.ctx = null;
    this.timer = null;
  }

  /** Create the audio context inside a user gesture (browsers refuse sound before one). */
  unlock() {
    if (!this.ctx) {
      try { this.ctx = new AudioContext(); } catch { this.ctx = null; }
    }
    if (this.ctx && this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
  }

  beep(freq, at, length) {
    const osc = this.ctx.createOscillator();
    const gain = this.ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
    osc.connect(gain).connect(this.ctx.destination);
    osc.start(at);
    osc.stop(at + length + 0.02);
  }

  start() {
    this.stop();
    this.unlock();
    const ring = () => {
      if (!this.ctx) return;
      const now = this.ctx.currentTime;
      this.beep(880, now, 0.18);
      this.beep(660, now + 0.25, 0.18);
    };
    ring();
    this.timer = setInterval(ring, 1500);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  get ringing() {
    return this.timer !== null;
  }
}
