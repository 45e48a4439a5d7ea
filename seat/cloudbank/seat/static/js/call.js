// The call screen: the customer's video large and the teller's own small, mute / camera / hold,
// the call timer, connection quality, the live transcript with suggestions, and the call's
// actions (snapshot, push form or document, signature, supervisor authorisation, transfer, end),
// and the ID card the customer sends.
import { h, fill, clock } from "./dom.js";
import { t } from "./i18n.js";
import { VideoLink } from "./rtc.js";
import { QualityMeter } from "./quality.js";
import { Transcript } from "./transcript.js";
import { ActionPanel } from "./actions.js";
import { IdCards } from "./id_cards.js";
import { PushAnswers } from "./pushes.js";
import { MediaProblem } from "./media_problem.js";

/** Ask for the teller's camera and microphone; null (and a reason) when there are none. */
export async function localMedia() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true, video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } },
    });
    return { stream, error: null };
  } catch (err) {
    return { stream: null, error: err.message || String(err) };
  }
}

export class CallScreen {
  /**
   * call: {session, video, started_at}; api: the Api; services: [[code, name]];
   * onEnded(call): the call is over (ended here or by the customer) -> wrap-up.
   * onPersist(call): store the call so a reload can return to it.
   */
  constructor(root, call, { api, services, onEnded, onPersist }) {
    this.root = root;
    this.call = call;
    this.api = api;
    this.sessionId = call.session.id;
    this.onEnded = onEnded;
    this.onPersist = onPersist;
    this.services = services;
    this.startedAt = call.started_at || Date.now() / 1000;
    this.onHold = false;
    this.ended = false;
    this.snapshots = new Set();
    this.activated = false;
  }

  async start() {
    const s = this.call.session;
    this.remote = h("video", { class: "remote", testid: "remote-video", autoplay: true, playsinline: true,
      "aria-label": t("call.customer") });
    this.local = h("video", { class: "local", testid: "local-video", autoplay: true, playsinline: true, muted: true,
      "aria-label": t("call.me") });
    this.local.muted = true;
    this.status = h("p", { class: "call-status", testid: "call-status", role: "status" }, t("call.connecting"));
    this.problem = new MediaProblem(() => this.retryMedia());
    this.timer = h("span", { class: "timer", testid: "call-timer", "aria-label": t("call.timer") }, "0:00");
    this.qualityEl = h("p", { class: "quality", testid: "call-quality", "aria-live": "off" }, t("quality.title"));
    this.log = h("ul", { class: "call-log", testid: "call-log", "aria-live": "polite" });
    this.shots = h("div", { class: "shots", testid: "snapshots" });
    this.idCards = new IdCards(this.api, {
      onShown: (side) => this.note(t("call.id_card_received", { side })),
      onError: (message) => this.note(t("call.id_card_failed", { message }), "warn"),
    });
    this.pushes = new PushAnswers(this.api, { startedAt: this.startedAt,
      onError: (message) => this.note(t("pushes.failed", { message }), "warn") });
    this.transcript = new Transcript();
    const panelEl = h("div", { class: "panel-slot" });
    this.panel = new ActionPanel(panelEl, (path, body) => this.post(path, body).then((r) => this.afterAction(path, body, r)),
      this.services);

    this.muteBtn = h("button", { type: "button", testid: "call-mute", "aria-pressed": "false", onclick: () => this.toggleMute() }, t("call.mute"));
    this.camBtn = h("button", { type: "button", testid: "call-camera", "aria-pressed": "false", onclick: () => this.toggleCamera() }, t("call.camera_off"));
    this.holdBtn = h("button", { type: "button", testid: "call-hold", "aria-pressed": "false", onclick: () => this.toggleHold() }, t("call.hold"));
    const action = (name, key) => {
      const btn = h("button", { type: "button", testid: name, onclick: () => this.panel.open(name, btn) }, t(key));
      return btn;
    };
    this.snapBtn = h("button", { type: "button", testid: "snapshot", onclick: () => this.snapshot() }, t("call.snapshot"));
    this.endBtn = h("button", { type: "button", class: "danger", testid: "end-call", onclick: () => this.end() }, t("call.end"));

    fill(this.root, h("section", { class: "call", testid: "call", "data-session": this.sessionId, "aria-labelledby": "call-title" },
      h("div", { class: "stage" },
        h("div", { class: "call-head" },
          h("h1", { id: "call-title" }, t("call.title"), " · ", h("span", { testid: "call-service" }, s.service_name || s.service || "")),
          this.timer),
        h("div", { class: "videos" }, this.remote, this.local),
        this.status, this.problem.el, this.qualityEl,
        h("div", { class: "toolbar", role: "toolbar", "aria-label": t("call.title") },
          this.muteBtn, this.camBtn, this.holdBtn, this.snapBtn,
          action("push-form", "call.push_form"), action("push-document", "call.push_document"),
          action("request-signature", "call.request_signature"), action("ask-authorisation", "call.ask_authorisation"),
          action("transfer", "call.transfer"), this.endBtn),
        this.log),
      // The side column keeps the stage still: forms open above the transcript, not under the video.
      h("div", { class: "side" }, panelEl, this.pushes.el, this.transcript.el, this.transcript.suggestEl, this.idCards.el, this.shots)));
    this.idCards.load(this.sessionId);
    this.pushes.load(this.sessionId);

    this.clock = setInterval(() => { this.timer.textContent = clock(Date.now() / 1000 - this.startedAt); }, 500);
    const media = await localMedia();
    if (this.ended) return;
    this.stream = media.stream;
    if (media.error) this.note(t("call.camera_missing", { message: media.error }), "warn");
    if (this.stream) {
      this.local.srcObject = this.stream;
      // Mute or camera-off pressed while the devices were opening still applies.
      const muted = this.muteBtn.getAttribute("aria-pressed") === "true";
      const camOff = this.camBtn.getAttribute("aria-pressed") === "true";
      for (const tr of this.stream.getAudioTracks()) tr.enabled = !muted;
      for (const tr of this.stream.getVideoTracks()) tr.enabled = !camOff;
    }
    this.remoteStream = new MediaStream();
    this.remote.srcObject = this.remoteStream;
    this.link = new VideoLink({
      video: this.call.video, mode: "send", localStream: this.stream,
      onTrack: (track) => {
        for (const old of this.remoteStream.getTracks().filter((x) => x.kind === track.kind)) this.remoteStream.removeTrack(old);
        this.remoteStream.addTrack(track);
        this.remote.play().catch(() => {});
      },
      onStatus: (st) => this.linkStatus(st),
      onMessage: (msg) => this.signal(msg),
      refresh: () => this.rejoinToken(),
      onProblem: (p) => this.mediaProblem(p),
    });
    this.link.start();
    this.meter = new QualityMeter(() => this.link && this.link.pc, this.qualityEl, this.remote);
  }

  linkStatus(st) {
    this.status.dataset.state = st;
    if (st === "connected" && !this.activated) {
      // Media is up: the session goes connecting -> active (idempotent after a rejoin).
      this.activated = true;
      this.post("activate").catch(() => { this.activated = false; });
    }
    if (st === "connected") this.problem.hide();
    const away = { left: "media.why_customer_left", waiting: "media.customer_waiting" }[this.customer];
    this.status.textContent = st === "connected" && away ? t(away)
      : t({ connecting: "call.connecting", connected: "call.connected", reconnecting: "call.reconnecting",
        failed: "call.no_video", closed: "call.ended" }[st] || "call.connecting");
  }

  /** A media attempt failed (rtc.js diagnosed why): say it in words, once per new reason, in the log too. */
  mediaProblem(p) {
    const text = this.problem.show(p);
    const key = `${p.reason}:${p.gaveUp}`;
    if (key !== this.lastProblem) this.note(text, "warn");
    this.lastProblem = key;
  }

  async retryMedia() {
    this.lastProblem = null;
    if (this.link) await this.link.retry();
  }

  async rejoinToken() {
    const r = await this.api.post(`sessions/${encodeURIComponent(this.sessionId)}/join`, {});
    this.call.video = r.video;
    this.onPersist(this.call);
    return r.video;
  }

  /** A new join answer from the platform (`video.rejoin`, e.g. the call moved to another node). */
  moveTo(video) {
    this.call.video = video;
    this.onPersist(this.call);
    if (this.link) this.link.moveTo(video);
  }

  signal(msg) {
    if (msg.type === "snapshot") this.addSnapshot(msg);
    else if (msg.type === "peer.left" && msg.party === "customer") {
      this.note(t("call.customer_left"), "warn");
      this.customerPresent("left");
    } else if (msg.type === "peer.joined" && msg.party === "customer") {
      this.note(t("call.customer_joined"));
      this.customerPresent("present");
    } else if (msg.type === "joined" && Array.isArray(msg.peers)) {
      this.customerPresent(msg.peers.includes("customer") ? "present" : "waiting");
    }
    // A media timeout is explained by the diagnosis (mediaProblem), not as "something went wrong".
    else if (msg.type === "error" && msg.code !== "ice_timeout") {
      this.note(t("error.generic", { message: msg.message || msg.code }), "warn");
    }
  }

  /** Whether the customer is in the video room (present | waiting | left): the status says so while
   * this console's own media is up, so a black picture is not taken for a broken connection. */
  customerPresent(customer) {
    this.customer = customer;
    this.status.dataset.customer = customer;
    if (this.status.dataset.state === "connected") this.linkStatus("connected");
  }

  note(text, kind = "info") {
    this.log.prepend(h("li", { class: kind }, `${clock(Date.now() / 1000 - this.startedAt)} ${text}`));
  }

  post(path, body = {}) {
    return this.api.post(`sessions/${encodeURIComponent(this.sessionId)}/${path}`, body);
  }

  afterAction(path, body, reply) {
    if (path === "push") {
      if (reply && reply.push) this.pushes.show(reply.push);
      this.note(t("call.pushed", { title: body.title }));
    }
    else if (path === "authorisations") this.note(t("call.auth_sent"));
    else if (path === "transfer") { this.note(t("call.transferred")); this.finish(); }
  }

  /** The customer answered a push: shown in the pushes card, and a line in the log naming it by its title. */
  answered(ev) {
    const title = ev.title || this.pushes.title(ev.push_id) || t("call.a_push");
    this.pushes.answered(ev);
    const key = ev.answer === "decline" ? "call.response_declined"
      : ev.kind === "signature_request" ? "call.response_signed"
        : ev.kind === "form" ? "call.response_confirmed" : "call.response_accepted";
    this.note(t(key, { title }), ev.answer === "decline" ? "warn" : "info");
  }

  toggleMute() {
    const tracks = this.stream ? this.stream.getAudioTracks() : [];
    const muted = this.muteBtn.getAttribute("aria-pressed") !== "true";
    for (const tr of tracks) tr.enabled = !muted;
    this.muteBtn.setAttribute("aria-pressed", String(muted));
    this.muteBtn.textContent = t(muted ? "call.unmute" : "call.mute");
  }

  toggleCamera() {
    const tracks = this.stream ? this.stream.getVideoTracks() : [];
    const off = this.camBtn.getAttribute("aria-pressed") !== "true";
    for (const tr of tracks) tr.enabled = !off;
    this.camBtn.setAttribute("aria-pressed", String(off));
    this.camBtn.textContent = t(off ? "call.camera_on" : "call.camera_off");
  }

  async toggleHold() {
    const hold = !this.onHold;
    this.holdBtn.disabled = true;
    try {
      await this.post(hold ? "hold" : "resume");
      this.onHold = hold;
      // On hold the customer neither hears nor sees the teller.
      for (const tr of this.stream ? this.stream.getTracks() : []) tr.enabled = !hold;
      this.holdBtn.setAttribute("aria-pressed", String(hold));
      this.holdBtn.textContent = t(hold ? "call.resume" : "call.hold");
      if (hold) this.note(t("call.on_hold"));
    } catch (err) {
      this.note(t("error.generic", { message: err.message }), "warn");
    } finally {
      this.holdBtn.disabled = false;
    }
  }

  snapshot() {
    if (!this.link || !this.link.send({ type: "snapshot" })) {
      this.note(t("call.reconnecting"), "warn");
    }
  }

  addSnapshot(msg) {
    if (!msg.url || this.snapshots.has(msg.url)) return;
    this.snapshots.add(msg.url);
    // The node serves a call's snapshots to its parties only: the join token goes in the query.
    const url = new URL(msg.url, new URL(this.call.video.url, location.href));
    if (!url.searchParams.has("token")) url.searchParams.set("token", this.call.video.token);
    const src = url.href;
    const faces = Array.isArray(msg.faces) ? msg.faces.length : Number(msg.faces || 0);
    this.shots.prepend(h("figure", { testid: "snapshot-item" },
      h("img", { src, alt: t("call.snapshot_taken"), width: "160" }),
      h("figcaption", {}, t("call.faces", { count: faces }))));
    this.note(t("call.snapshot_taken"));
  }

  /** Platform events for this session. */
  event(ev) {
    switch (ev.type) {
      case "transcript": this.transcript.line(ev); break;
      case "keyword": this.transcript.keyword(ev); break;
      case "snapshot": this.addSnapshot(ev); break;
      case "id_card": this.idCards.add(ev); break;
      case "push.response": this.answered(ev); break;
      case "authorisation.result": {
        const granted = ev.state === "granted";
        this.note(t(granted ? "call.auth_granted" : "call.auth_refused", { reason: ev.decision_reason || "" }),
          granted ? "info" : "warn");
        break;
      }
      case "video.rejoin": if (ev.video) this.moveTo(ev.video); break;
      case "session.ended": this.note(t("call.ended")); this.finish(); break;
      case "session.update":
        if (ev.session && ["ended", "wrapup", "wrap_up", "done"].includes(ev.session.state)) this.finish();
        break;
      default: break;
    }
  }

  async end() {
    this.endBtn.disabled = true;
    try {
      await this.post("end");
    } catch (err) {
      // Already ended (by the customer) is fine: wrap up either way.
      if (err.status !== 409) { this.note(t("error.generic", { message: err.message }), "warn"); this.endBtn.disabled = false; return; }
    }
    this.finish();
  }

  finish() {
    if (this.ended) return;
    this.ended = true;
    this.destroy();
    this.onEnded(this.call);
  }

  destroy() {
    clearInterval(this.clock);
    if (this.meter) this.meter.stop();
    if (this.link) this.link.close();
    for (const tr of this.stream ? this.stream.getTracks() : []) tr.stop();
    if (this.idCards) this.idCards.destroy();
    if (this.pushes) this.pushes.destroy();
  }
}
