// The WebRTC link to the video node (`<node url>ws?token=<join token>`, docs/protocol.md).
// The browser always offers. If the socket or the media path drops, the link rejoins: a new
// socket and a new offer with the same token (a fresh one from `refresh()` once it is refused);
// the other party's media continues without renegotiation on the server side.
// Every failed attempt is diagnosed (rtc_diagnosis.js) and reported through onProblem; after
// MAX_AUTO_REJOINS failed attempts in a row the link stops and waits for `retry()` (a person's
// "Try again") instead of looping.
import { diagnose, iceSummary, retriable } from "./rtc_diagnosis.js";

const REJOIN_DELAYS_MS = [300, 1000, 2000, 4000, 8000];
const DISCONNECTED_GRACE_MS = 2500;
const GATHER_LIMIT_MS = 2000;
// An attempt whose media is not up this long after the socket opened has failed (the node gives
// up at video_ice_timeout_s, 15 s by default; the browser does not wait for it).
const CONNECT_LIMIT_MS = 12000;
const SAMPLE_MS = 1000;
export const MAX_AUTO_REJOINS = 3;

/** ws(s):// URL of the node's signalling socket for a join `video` answer. */
export function signallingUrl(video) {
  const base = new URL(video.url, location.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const u = new URL("ws", base);
  u.protocol = u.protocol === "https:" ? "wss:" : u.protocol === "http:" ? "ws:" : u.protocol;
  u.searchParams.set("token", video.token);
  return u.href;
}

function iceServers(video) {
  return (video.ice_servers || []).filter((s) => s && s.urls);
}

export class VideoLink {
  /**
   * video: {url, token, ice_servers}; mode: "send" (teller: sendrecv audio+video from
   * localStream) or "monitor" (supervisor: recvonly audio+video for the customer, then the teller).
   * onTrack(track, index): index of the transceiver (monitor: 0,1 customer; 2,3 teller; send:
   * 0,1 the other party, 2 a supervisor's voice when `supervisorVoice`).
   * supervisorVoice (send): also offer a recvonly audio section, where a supervisor's whisper or
   * barge-in arrives. A monitor always offers a sendonly audio section, silent until
   * setMicrophone(track) (the supervisor's whisper or barge-in, docs/protocol.md).
   * onStatus("connecting"|"connected"|"reconnecting"|"closed"); onMessage(msg) for other messages.
   * refresh(): a promise of a fresh `video` when the node refuses the token.
   * onProblem({reason, stats, nodeError, attempt, max, gaveUp}): an attempt failed (status
   * "reconnecting"), or the link gave up (status "failed") until retry().
   */
  constructor({ video, mode = "send", localStream = null, onTrack, onStatus, onMessage, refresh, onProblem,
    supervisorVoice = false }) {
    this.video = video;
    this.supervisorVoice = supervisorVoice;
    this.micTrack = null;
    this.mode = mode;
    this.localStream = localStream;
    this.onTrack = onTrack || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onMessage = onMessage || (() => {});
    this.refresh = refresh || (async () => this.video);
    this.onProblem = onProblem || (() => {});
    // Only a screen that can show the reason and a "Try again" lets the link stop by itself.
    this.mayGiveUp = Boolean(onProblem);
    this.trace = null;
    this.gaveUp = false;
    this.problem = null;
    this.pc = null;
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.rejoinTimer = null;
    this.graceTimer = null;
    this.rejoins = 0;
  }

  start() {
    this.connect();
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  connect() {
    if (this.closed) return;
    this.onStatus(this.rejoins ? "reconnecting" : "connecting");
    // What this attempt learns, for the diagnosis if it fails.
    const trace = { wsOpened: false, answered: false, nodeError: null, wasConnected: false, remoteCandidates: 0,
      stats: null };
    this.trace = trace;
    let ws;
    try {
      ws = new WebSocket(signallingUrl(this.video));
    } catch (err) {
      // A URL the page may not open (bad address, refused by the CSP): the node is unreachable from here.
      console.error("signalling socket refused", err);
      this.needFreshToken = true;
      setTimeout(() => this.scheduleRejoin(), 0);
      return;
    }
    this.ws = ws;
    const pc = new RTCPeerConnection({ iceServers: iceServers(this.video) });
    this.pc = pc;
    this.sampleTimer = setInterval(() => this.sample(pc, trace), SAMPLE_MS);
    if (this.mode === "monitor") {
      for (let i = 0; i < 2; i += 1) {
        pc.addTransceiver("audio", { direction: "recvonly" });
        pc.addTransceiver("video", { direction: "recvonly" });
      }
      // The supervisor's microphone: sends nothing until setMicrophone() (no renegotiation then).
      pc.addTransceiver(this.micTrack || "audio", { direction: "sendonly" });
    } else if (this.localStream) {
      const audio = this.localStream.getAudioTracks()[0];
      const video = this.localStream.getVideoTracks()[0];
      pc.addTransceiver(audio || "audio", { direction: "sendrecv", streams: [this.localStream] });
      pc.addTransceiver(video || "video", { direction: "sendrecv", streams: [this.localStream] });
    } else {
      pc.addTransceiver("audio", { direction: "sendrecv" });
      pc.addTransceiver("video", { direction: "sendrecv" });
    }
    if (this.mode !== "monitor" && this.supervisorVoice) pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      const index = pc.getTransceivers().indexOf(ev.transceiver);
      this.onTrack(ev.track, index);
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const state = pc.connectionState;
      clearTimeout(this.graceTimer);
      if (state === "connected") {
        this.attempt = 0;
        trace.wasConnected = true;
        clearTimeout(this.connectTimer);
        this.problem = null;
        this.onStatus("connected");
      } else if (state === "failed") {
        this.scheduleRejoin();
      } else if (state === "disconnected") {
        // ICE often recovers by itself from a short blip; rejoin only if it does not.
        this.graceTimer = setTimeout(() => { if (this.pc === pc) this.scheduleRejoin(); }, DISCONNECTED_GRACE_MS);
      }
    };
    ws.onopen = async () => {
      trace.wsOpened = true;
      clearTimeout(this.connectTimer);
      this.connectTimer = setTimeout(() => {
        if (this.pc === pc && pc.connectionState !== "connected") this.scheduleRejoin();
      }, CONNECT_LIMIT_MS);
      try {
        await pc.setLocalDescription(await pc.createOffer());
        await this.gathered(pc);
        if (this.ws === ws) ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
      } catch (err) {
        console.error("offer failed", err);
        this.scheduleRejoin();
      }
    };
    ws.onmessage = async (raw) => {
      let msg;
      try { msg = JSON.parse(raw.data); } catch { return; }
      if (this.ws !== ws) return;
      try {
        if (msg.type === "answer") {
          trace.answered = true;
          trace.remoteCandidates = (String(msg.sdp || "").match(/^a=candidate:/gm) || []).length;
          await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        } else if (msg.type === "candidate" && msg.candidate) {
          await pc.addIceCandidate(msg.candidate);
        } else if (msg.type === "error") {
          trace.nodeError = msg.code || "error";
          this.onMessage(msg);
          if (["unauthorized", "forbidden", "expired", "token_expired"].includes(msg.code)) {
            this.needFreshToken = true;
          }
          return;
        }
      } catch (err) {
        console.error("signalling message failed", msg.type, err);
      }
      this.onMessage(msg);
    };
    let opened = false;
    ws.addEventListener("open", () => { opened = true; });
    ws.onclose = () => {
      if (this.ws !== ws || this.closed) return;
      // A refused handshake is an expired token or a node that is gone: ask the platform again
      // (it moves the call to a live node when its node died).
      if (!opened) this.needFreshToken = true;
      this.scheduleRejoin();
    };
  }

  /** A monitor's microphone track (null: silent); kept across rejoins. */
  async setMicrophone(track) {
    this.micTrack = track;
    const t = this.pc && this.pc.getTransceivers()[4];
    if (t) await t.sender.replaceTrack(track);
  }

  /** Wait until ICE gathering completes (candidates go inside the offer), at most a moment. */
  gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); pc.removeEventListener("icegatheringstatechange", check); resolve(); };
      const check = () => { if (pc.iceGatheringState === "complete") done(); };
      const timer = setTimeout(done, GATHER_LIMIT_MS);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  /** Keep the attempt's latest getStats summary (a failed attempt's pc is closed before it is asked). */
  async sample(pc, trace) {
    if (this.pc !== pc || pc.connectionState === "connected") return;
    try {
      const stats = await iceSummary(pc);
      if (this.pc === pc) trace.stats = stats;
    } catch { /* closed meanwhile */ }
  }

  /** Report why the attempt failed; give up after MAX_AUTO_REJOINS or when retrying cannot help. */
  report(trace, extra = {}) {
    const t = { ...(trace || {}), ...extra };
    const reason = diagnose(t);
    // The answer's own candidates count as remote addresses even when the browser dropped them.
    if (t.stats) t.stats = { ...t.stats, remote: Math.max(t.stats.remote, t.remoteCandidates || 0) };
    const gaveUp = this.mayGiveUp && (this.attempt >= MAX_AUTO_REJOINS || !retriable(reason));
    this.problem = { reason, stats: t.stats || null, nodeError: t.nodeError || null, grantError: t.grantError || null,
      attempt: this.attempt, max: MAX_AUTO_REJOINS, gaveUp };
    this.onProblem(this.problem);
    return gaveUp;
  }

  scheduleRejoin() {
    if (this.closed || this.rejoinTimer || this.gaveUp) return;
    const trace = this.trace;
    this.teardown();
    this.attempt += 1;
    if (this.report(trace)) { this.stop(); return; }
    this.onStatus("reconnecting");
    const delay = REJOIN_DELAYS_MS[Math.min(this.attempt - 1, REJOIN_DELAYS_MS.length - 1)];
    this.rejoinTimer = setTimeout(async () => {
      this.rejoinTimer = null;
      if (this.closed || this.gaveUp) return;
      if (this.needFreshToken || this.attempt > 2) {
        if (!await this.grant(trace)) return;
      }
      this.rejoins += 1;
      this.connect();
    }, delay);
  }

  /** A fresh grant from the platform; false when the link stopped (call over, or gave up). */
  async grant(trace) {
    try {
      this.video = await this.refresh();
      this.needFreshToken = false;
      return true;
    } catch (err) {
      this.onMessage({ type: "error", code: err.code || "rejoin_failed", message: err.message, status: err.status });
      if (err.status === 403 || err.status === 404 || err.status === 409) { this.close(); return false; }
      // The platform could not give one: say so (no video node, or this computer is offline).
      const offline = err.status === undefined;
      if (this.report(trace, { grantError: err.code || "", offline })) { this.stop(); return false; }
      return true;
    }
  }

  /** Stop rejoining until retry(): the screen shows the reason and a "Try again" button. */
  stop() {
    this.gaveUp = true;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = null;
    this.teardown();
    this.onStatus("failed");
  }

  /** A person's "Try again": a fresh grant and a new attempt now, with the automatic rejoins reset. */
  async retry() {
    if (this.closed) return;
    this.gaveUp = false;
    this.attempt = 0;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = null;
    this.teardown();
    this.onStatus("reconnecting");
    if (!await this.grant(this.trace)) return;
    if (this.closed || this.gaveUp) return;
    this.rejoins += 1;
    this.connect();
  }

  teardown() {
    clearTimeout(this.graceTimer);
    clearTimeout(this.connectTimer);
    clearInterval(this.sampleTimer);
    const ws = this.ws;
    const pc = this.pc;
    this.ws = null;
    this.pc = null;
    if (ws) { try { ws.close(); } catch { /* already closed */ } }
    if (pc) pc.close();
  }

  /** The platform moved the call to another video node (`video.rejoin`): go there now, with its
   * grant, even while a rejoin waits out its back-off against the dead node. */
  moveTo(video) {
    if (this.closed || !video) return;
    this.video = video;
    this.needFreshToken = false;
    this.gaveUp = false;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = null;
    this.attempt = 0;
    this.teardown();
    this.rejoins += 1;
    this.connect();
  }

  /** Simulate a network drop (test hook): the link must rejoin by itself. */
  drop() {
    if (this.ws) this.ws.close();
    if (this.pc) this.pc.close();
    this.scheduleRejoin();
  }

  close() {
    if (this.closed) return;
    this.send({ type: "leave" });
    this.closed = true;
    clearTimeout(this.rejoinTimer);
    this.teardown();
    this.onStatus("closed");
  }
}
