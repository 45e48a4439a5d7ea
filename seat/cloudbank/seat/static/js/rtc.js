// The WebRTC link to the video node (`<node url>ws?token=<join token>`, docs/protocol.md).
// The browser always offers. If the socket or the media path drops, the link rejoins: a new
// socket and a new offer with the same token (a fresh one from `refresh()` once it is refused);
// the other party's media continues without renegotiation on the server side.

const REJOIN_DELAYS_MS = [300, 1000, 2000, 4000, 8000];
const DISCONNECTED_GRACE_MS = 2500;
const GATHER_LIMIT_MS = 2000;

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
   * onTrack(track, index): index of the transceiver (monitor: 0,1 customer; 2,3 teller).
   * onStatus("connecting"|"connected"|"reconnecting"|"closed"); onMessage(msg) for other messages.
   * refresh(): a promise of a fresh `video` when the node refuses the token.
   */
  constructor({ video, mode = "send", localStream = null, onTrack, onStatus, onMessage, refresh }) {
    this.video = video;
    this.mode = mode;
    this.localStream = localStream;
    this.onTrack = onTrack || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onMessage = onMessage || (() => {});
    this.refresh = refresh || (async () => this.video);
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
    const ws = new WebSocket(signallingUrl(this.video));
    this.ws = ws;
    const pc = new RTCPeerConnection({ iceServers: iceServers(this.video) });
    this.pc = pc;
    if (this.mode === "monitor") {
      for (let i = 0; i < 2; i += 1) {
        pc.addTransceiver("audio", { direction: "recvonly" });
        pc.addTransceiver("video", { direction: "recvonly" });
      }
    } else if (this.localStream) {
      const audio = this.localStream.getAudioTracks()[0];
      const video = this.localStream.getVideoTracks()[0];
      pc.addTransceiver(audio || "audio", { direction: "sendrecv", streams: [this.localStream] });
      pc.addTransceiver(video || "video", { direction: "sendrecv", streams: [this.localStream] });
    } else {
      pc.addTransceiver("audio", { direction: "sendrecv" });
      pc.addTransceiver("video", { direction: "sendrecv" });
    }
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
        this.onStatus("connected");
      } else if (state === "failed") {
        this.scheduleRejoin();
      } else if (state === "disconnected") {
        // ICE often recovers by itself from a short blip; rejoin only if it does not.
        this.graceTimer = setTimeout(() => { if (this.pc === pc) this.scheduleRejoin(); }, DISCONNECTED_GRACE_MS);
      }
    };
    ws.onopen = async () => {
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
          await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        } else if (msg.type === "candidate" && msg.candidate) {
          await pc.addIceCandidate(msg.candidate);
        } else if (msg.type === "error") {
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

  scheduleRejoin() {
    if (this.closed || this.rejoinTimer) return;
    this.teardown();
    this.onStatus("reconnecting");
    const delay = REJOIN_DELAYS_MS[Math.min(this.attempt, REJOIN_DELAYS_MS.length - 1)];
    this.attempt += 1;
    this.rejoinTimer = setTimeout(async () => {
      this.rejoinTimer = null;
      if (this.closed) return;
      if (this.needFreshToken || this.attempt > 2) {
        try {
          this.video = await this.refresh();
          this.needFreshToken = false;
        } catch (err) {
          this.onMessage({ type: "error", code: err.code || "rejoin_failed", message: err.message, status: err.status });
          if (err.status === 403 || err.status === 404 || err.status === 409) { this.close(); return; }
        }
      }
      this.rejoins += 1;
      this.connect();
    }, delay);
  }

  teardown() {
    clearTimeout(this.graceTimer);
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
