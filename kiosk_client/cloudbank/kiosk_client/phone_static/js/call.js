// The video call from a browser: a WebRTC peer connection to the video node, signalled over its
// WebSocket with the join token. The page always offers; ICE candidates trickle both ways.
// On a drop (socket closed, ICE failed) it rejoins with a fresh token from `refresh()`.
// When the platform moves the call to another video node (its node died) the page gets
// `video.rejoin {session, video}`: `moveTo(video)` rejoins there at once, also while a rejoin is
// retrying against the dead node and after one gave up.

export class VideoCall {
  /** onState(s) gets the connection's state (shown to the customer); onPeer(type, party) gets
   *  the room's peer.joined / peer.left messages; onSupervisorTrack(track) the third audio section's
   *  track (a supervisor who barges in); onTalk(mode) the node's `talk` ("barge" or "off"). */
  constructor({ grant, localStream, refresh = null, onRemoteStream = () => {}, onState = () => {},
                onPeer = () => {}, onSupervisorTrack = () => {}, onTalk = () => {}, maxRejoins = 5 }) {
    this.onSupervisorTrack = onSupervisorTrack;
    this.onTalk = onTalk;
    this.grant = grant;
    this.localStream = localStream;
    this.refresh = refresh;
    this.onRemoteStream = onRemoteStream;
    this.onState = onState;
    this.onPeer = onPeer;
    this.maxRejoins = maxRejoins;
    this.rejoins = 0;
    this.leaving = false;
    this.remoteStream = new MediaStream();
  }

  _signallingUrl() {
    const base = this.grant.url.endsWith("/") ? this.grant.url : `${this.grant.url}/`;
    const url = new URL(`${base}ws`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this.grant.token);
    return url.toString();
  }

  async join() {
    this.onState("connecting");
    const ws = new WebSocket(this._signallingUrl());
    this.ws = ws;
    const joined = await new Promise((resolve, reject) => {
      ws.onmessage = (msg) => {
        const data = JSON.parse(msg.data);
        if (data.type === "joined") resolve(data);
        else if (data.type === "error") reject(new Error(`${data.code}: ${data.message}`));
      };
      ws.onclose = () => reject(new Error("the video node closed the connection"));
      ws.onerror = () => reject(new Error("the video node cannot be reached"));
    });
    const iceServers = (joined.ice_servers || this.grant.ice_servers || []).filter((s) => s.urls);
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    pc.addTransceiver("audio", { direction: "recvonly" }); // a supervisor's voice, when one barges in
    this.remoteStream = new MediaStream();
    pc.ontrack = (ev) => {
      if (pc.getTransceivers().indexOf(ev.transceiver) >= 2) { this.onSupervisorTrack(ev.track); return; }
      this.remoteStream.addTrack(ev.track);
      this.onRemoteStream(this.remoteStream);
    };
    pc.onicecandidate = (ev) => {
      if (ev.candidate && ws.readyState === WebSocket.OPEN) {
        const c = ev.candidate;
        ws.send(JSON.stringify({ type: "candidate",
          candidate: { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } }));
      }
    };
    pc.onconnectionstatechange = () => {
      this.onState(pc.connectionState);
      if (pc === this.pc && pc.connectionState === "failed") this._lost();
    };
    ws.onmessage = async (msg) => {
      const data = JSON.parse(msg.data);
      if (data.type === "answer") await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
      else if (data.type === "candidate" && data.candidate && data.candidate.candidate) {
        try { await pc.addIceCandidate(data.candidate); } catch (err) { console.warn("candidate", err); }
      } else if (data.type === "peer.joined" || data.type === "peer.left") this.onPeer(data.type, data.party);
      else if (data.type === "talk") this.onTalk(data.mode === "barge" ? "barge" : "off");
    };
    ws.onclose = () => { if (ws === this.ws) this._lost(); };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
  }

  /** The platform moved the call (`video.rejoin`): join the node `grant` names, now. */
  moveTo(grant) {
    if (this.leaving || !grant) return;
    this._offered = grant;
    if (this._wake) this._wake();  // cut the running rejoin's back-off short
    else this._lost();
  }

  async _lost() {
    if (this.leaving || this._rejoining) return;
    this._rejoining = true;
    this.onState("rejoining");
    let attempts = 0;
    try {
      while (!this.leaving && (attempts < this.maxRejoins || this._offered)) {
        this.rejoins += 1;
        attempts += 1;
        this._close();
        const offered = this._offered;
        this._offered = null;
        try {
          if (offered) { this.grant = offered; attempts = 1; }  // a fresh grant: a fresh budget
          else if (this.refresh) this.grant = await this.refresh();
          await this.join();
          this._offered = null;  // one that came while this join went through names this node too
          return;
        } catch (err) {
          console.warn("rejoin failed", err);
          if (this._offered) continue;
          await new Promise((r) => {
            const timer = setTimeout(r, Math.min(3000, 300 * 2 ** attempts));
            this._wake = () => { clearTimeout(timer); r(); };
          });
          this._wake = null;
        }
      }
      if (!this.leaving) this.onState("failed");
    } finally {
      this._rejoining = false;
    }
  }

  _close() {
    const { ws, pc } = this;
    this.ws = null;
    this.pc = null;
    if (ws) { ws.onclose = null; ws.close(); }
    if (pc) pc.close();
  }

  leave() {
    this.leaving = true;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "leave" }));
    this._close();
    this.onState("left");
  }
}
