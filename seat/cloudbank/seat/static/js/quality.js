// Connection quality from RTCPeerConnection.getStats(): received bitrate, packet loss and
// round-trip time, with a warning when the call is bad. Also publishes framesDecoded on the
// remote video element (data-frames-decoded) so people and tests can see video is decoding.
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";

const PERIOD_MS = 1000;
// Inbound totals (audio ~32 kbit/s alone): below these the customer freezes or breaks up.
export const LIMITS = { lossPercent: 5, rttMs: 400, minKbps: 40 };

/** Summarise two getStats() snapshots; pure, so it is easy to reason about. */
export function summarise(prev, stats) {
  let bytes = 0;
  let received = 0;
  let lost = 0;
  let framesDecoded = 0;
  let rtt = null;
  let timestamp = 0;
  const perTrack = {};
  stats.forEach((s) => {
    if (s.type === "inbound-rtp") {
      bytes += s.bytesReceived || 0;
      received += s.packetsReceived || 0;
      lost += Math.max(0, s.packetsLost || 0);
      if (s.kind === "video") {
        framesDecoded += s.framesDecoded || 0;
        perTrack[s.trackIdentifier] = (perTrack[s.trackIdentifier] || 0) + (s.framesDecoded || 0);
      }
      timestamp = Math.max(timestamp, s.timestamp || 0);
    } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded"
      && typeof s.currentRoundTripTime === "number") {
      rtt = s.currentRoundTripTime * 1000;
    } else if (s.type === "remote-inbound-rtp" && rtt === null && typeof s.roundTripTime === "number") {
      rtt = s.roundTripTime * 1000;
    }
  });
  const now = { bytes, received, lost, framesDecoded, timestamp };
  if (!prev || !prev.timestamp || timestamp <= prev.timestamp) {
    return { now, kbps: null, loss: null, rtt, framesDecoded, perTrack };
  }
  const seconds = (timestamp - prev.timestamp) / 1000;
  const kbps = Math.round(((bytes - prev.bytes) * 8) / 1000 / seconds);
  const dPackets = (received - prev.received) + (lost - prev.lost);
  const loss = dPackets > 0 ? Math.round((1000 * (lost - prev.lost)) / dPackets) / 10 : 0;
  return { now, kbps, loss, rtt, framesDecoded, perTrack };
}

export function isBad({ kbps, loss, rtt }) {
  return (loss !== null && loss > LIMITS.lossPercent) || (rtt !== null && rtt > LIMITS.rttMs)
    || (kbps !== null && kbps < LIMITS.minKbps);
}

export class QualityMeter {
  /**
   * getPc(): the current RTCPeerConnection (it changes on rejoin); el: where to show it;
   * videoEls: the video element(s) to mark with their own track's framesDecoded.
   */
  constructor(getPc, el, videoEls) {
    this.getPc = getPc;
    this.el = el;
    this.videoEls = [videoEls].flat().filter(Boolean);
    this.prev = null;
    this.pc = null;
    this.timer = setInterval(() => this.sample(), PERIOD_MS);
    this.badStreak = 0;
  }

  async sample() {
    const pc = this.getPc();
    if (!pc) return;
    if (pc !== this.pc) { this.pc = pc; this.prev = null; }
    let stats;
    try { stats = await pc.getStats(); } catch { return; }
    const q = summarise(this.prev, stats);
    this.prev = q.now;
    for (const v of this.videoEls) {
      const track = v.srcObject && v.srcObject.getVideoTracks()[0];
      const own = track ? q.perTrack[track.id] : undefined;
      v.dataset.framesDecoded = String(own ?? (this.videoEls.length === 1 ? q.framesDecoded : 0));
    }
    if (q.kbps === null) return;
    // One bad second is noise; warn when it lasts.
    this.badStreak = isBad(q) ? this.badStreak + 1 : 0;
    const bad = this.badStreak >= 3;
    this.el.dataset.quality = bad ? "bad" : "good";
    this.el.classList.toggle("bad", bad);
    fill(this.el,
      h("span", { testid: "quality-bitrate" }, t("quality.bitrate", { kbps: q.kbps })), " · ",
      h("span", { testid: "quality-loss" }, t("quality.loss", { loss: q.loss })), " · ",
      h("span", { testid: "quality-rtt" }, q.rtt === null ? "RTT –" : t("quality.rtt", { rtt: Math.round(q.rtt) })),
      bad ? h("strong", { class: "warn", testid: "quality-warning", role: "alert" }, " ", t("quality.bad")) : null);
  }

  stop() {
    clearInterval(this.timer);
  }
}
