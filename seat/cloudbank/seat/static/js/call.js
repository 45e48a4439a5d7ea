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
import { FaceCheck } from "./face_check.js";
import { PushAnswers } from "./pushes.js";
import { WorkOrderPanel } from "./work_order.js";
import { MediaProblem, reasonNote } from "./media_problem.js";

// The call log lines a reload keeps (sessionStorage holds them with the call).
const LOG_KEEP = 200;

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
   * call: {session, video, started_at, log?}; api: the Api; services: [[code, name]];
   * onEnded(call): the call is over (ended here or by the customer) -> wrap-up.
   * onPersist(call): store the call so a reload can return to it (its log goes with it).
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
    this.muted = false;
    this.cameraOff = false;
    this.ended = false;
    this.snapshots = new Map();   // url -> the snapshot message, to show again after a re-render
    this.activated = false;
    this.linkState = "connecting";
    this.talkMode = "off";        // a monitoring supervisor's whisper or barge-in, as the node says
    this.lastProblem = null;
    // The call log as translation keys, so a language switch re-renders it and a reload keeps it.
    this.call.log = Array.isArray(call.log) ? call.log.slice(-LOG_KEEP) : [];
  }

  async start() {
    this.remote = h("video", { class: "remote", testid: "remote-video", autoplay: true, playsinline: true });
    this.supervisorAudio = h("audio", { testid: "supervisor-audio", autoplay: true });
    this.local = h("video", { class: "local", testid: "local-video", autoplay: true, playsinline: true, muted: true });
    this.local.muted = true;
    this.render();
    this.load();
    this.clock = setInterval(() => { this.timer.textContent = clock(Date.now() / 1000 - this.startedAt); }, 500);
    const media = await localMedia();
    if (this.ended) return;
    this.stream = media.stream;
    if (media.error) this.note("call.camera_missing", { message: media.error }, "warn");
    if (this.stream) {
      this.local.srcObject = this.stream;
      // Mute, camera-off or hold pressed while the devices were opening still applies.
      this.applyTracks();
    }
    this.remoteStream = new MediaStream();
    this.remote.srcObject = this.remoteStream;
    this.link = new VideoLink({
      video: this.call.video, mode: "send", localStream: this.stream, supervisorVoice: true,
      onTrack: (track, index) => {
        if (index === 2) { // a supervisor's voice: heard by the teller alone, never mixed into the customer's
          this.supervisorAudio.srcObject = new MediaStream([track]);
          this.supervisorAudio.play().catch(() => {});
          return;
        }
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

  /** Build the screen from what this object knows; the videos, the link and the camera are kept. */
  render() {
    const s = this.call.session;
    this.remote.setAttribute("aria-label", t("call.customer"));
    this.local.setAttribute("aria-label", t("call.me"));
    this.status = h("p", { class: "call-status", testid: "call-status", role: "status" });
    this.talkBanner = h("p", { class: "hold-banner talk-banner", testid: "supervisor-talking", role: "status" });
    this.showTalk();
    this.problem = new MediaProblem(() => this.retryMedia());
    this.timer = h("span", { class: "timer", testid: "call-timer", "aria-label": t("call.timer") },
      clock(Date.now() / 1000 - this.startedAt));
    this.qualityEl = h("p", { class: "quality", testid: "call-quality", "aria-live": "off" }, t("quality.title"));
    this.log = h("ul", { class: "call-log", testid: "call-log", "aria-live": "polite" });
    this.shots = h("div", { class: "shots", testid: "snapshots" });
    if (this.idCards) this.idCards.destroy();
    this.idCards = new IdCards(this.api, {
      onShown: (side) => this.note("call.id_card_received", { side }),
      onError: (message) => this.note("call.id_card_failed", { message }, "warn"),
    });
    if (this.pushes) this.pushes.destroy();
    this.pushes = new PushAnswers(this.api, { startedAt: this.startedAt,
      onError: (message) => this.note("pushes.failed", { message }, "warn") });
    this.transcript = new Transcript();
    this.transcript.transcription(this.call.transcription);   // as the video node last said (a re-render)
    // The call's work order keeps its state across re-renders; transcript words go into its fields.
    if (this.workOrder) this.workOrder.render();
    else this.workOrder = new WorkOrderPanel(this.api, { sessionId: this.sessionId, service: s.service,
      language: () => (this.call.transcription && this.call.transcription.language) || "en",
      onNote: (key, params, kind) => this.note(key, params, kind) });
    this.workOrder.attach(this.transcript.el);
    // The ID check (face match) keeps its picks and result across re-renders too.
    if (this.faceCheck) this.faceCheck.render();
    else this.faceCheck = new FaceCheck(this.api, { sessionId: this.sessionId,
      onNote: (key, params, kind) => this.note(key, params, kind) });
    const panelEl = h("div", { class: "panel-slot" });
    this.panel = new ActionPanel(panelEl, (path, body) => this.post(path, body).then((r) => this.afterAction(path, body, r)),
      this.services);

    this.muteBtn = h("button", { type: "button", testid: "call-mute", onclick: () => this.toggleMute() });
    this.camBtn = h("button", { type: "button", testid: "call-camera", onclick: () => this.toggleCamera() });
    this.holdBtn = h("button", { type: "button", testid: "call-hold", onclick: () => this.toggleHold() });
    this.showToggles();
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
        h("div", { class: "videos" }, this.remote, this.local, this.supervisorAudio),
        this.talkBanner, this.status, this.problem.el, this.qualityEl,
        h("div", { class: "toolbar", role: "toolbar", "aria-label": t("call.title") },
          this.muteBtn, this.camBtn, this.holdBtn, this.snapBtn,
          action("push-form", "call.push_form"), action("push-document", "call.push_document"),
          action("request-signature", "call.request_signature"), action("ask-authorisation", "call.ask_authorisation"),
          action("transfer", "call.transfer"), this.endBtn),
        this.workOrder.el, this.log),
      // The side column keeps the stage still: forms open above the transcript, not under the video.
      h("div", { class: "side" }, panelEl, this.pushes.el, this.transcript.el, this.transcript.suggestEl, this.idCards.el, this.faceCheck.el, this.shots)));
    // Moving a playing <video> to the new tree pauses it.
    for (const v of [this.remote, this.local]) if (v.srcObject) v.play().catch(() => {});
    for (const entry of this.call.log) this.showNote(entry);
    for (const msg of this.snapshots.values()) this.showSnapshot(msg);
    this.linkStatus(this.linkState);
    if (this.lastProblemData && this.linkState !== "connected") this.problem.show(this.lastProblemData);
  }

  /** What the platform knows of the call so far: ID cards, pushes and answers, the transcript,
   * keyword hits and snapshots, and whether it is on hold (a reload or a re-render starts empty). */
  load() {
    this.idCards.load(this.sessionId);
    this.faceCheck.load();
    this.pushes.load(this.sessionId);
    this.workOrder.load();
    const id = encodeURIComponent(this.sessionId);
    this.api.get(`sessions/${id}/history`).then((hist) => {
      if (this.ended) return;
      for (const ev of hist.transcript || []) this.transcript.line(ev);
      for (const ev of hist.keywords || []) { this.transcript.keyword(ev); this.workOrder.keyword(ev, true); }
      for (const ev of hist.snapshots || []) this.addSnapshot(ev, { quiet: true });
    }).catch((err) => this.note("call.history_failed", { message: err.message }, "warn"));
    this.api.get(`sessions/${id}`).then((r) => {
      if (!this.ended && r.session && r.session.state === "on_hold" && !this.onHold) {
        this.onHold = true;
        this.applyTracks();
        this.showToggles();
      }
    }).catch(() => { /* the call screen works without it */ });
  }

  /** The language changed: the same call in the new words, media untouched. */
  relabel() {
    if (this.ended) return;
    this.render();
    this.load();
    if (this.meter) this.meter.stop();
    this.meter = new QualityMeter(() => this.link && this.link.pc, this.qualityEl, this.remote);
  }

  showToggles() {
    const set = (btn, pressed, onKey, offKey) => {
      btn.setAttribute("aria-pressed", String(pressed));
      btn.textContent = t(pressed ? onKey : offKey);
    };
    set(this.muteBtn, this.muted, "call.unmute", "call.mute");
    set(this.camBtn, this.cameraOff, "call.camera_on", "call.camera_off");
    set(this.holdBtn, this.onHold, "call.resume", "call.hold");
  }

  /** The teller's own tracks: off while muted / camera off, and all of them while on hold. */
  applyTracks() {
    for (const tr of this.stream ? this.stream.getAudioTracks() : []) tr.enabled = !this.muted && !this.onHold;
    for (const tr of this.stream ? this.stream.getVideoTracks() : []) tr.enabled = !this.cameraOff && !this.onHold;
  }

  linkStatus(st) {
    this.linkState = st;
    this.status.dataset.state = st;
    if (st === "connected" && !this.activated) {
      // Media is up: the session goes connecting -> active (idempotent after a rejoin).
      this.activated = true;
      this.post("activate").catch(() => { this.activated = false; });
    }
    if (st === "connected") { this.problem.hide(); this.lastProblemData = null; }
    const away = { left: "media.why_customer_left", waiting: "media.customer_waiting" }[this.customer];
    this.status.textContent = st === "connected" && away ? t(away)
      : t({ connecting: "call.connecting", connected: "call.connected", reconnecting: "call.reconnecting",
        failed: "call.no_video", closed: "call.ended" }[st] || "call.connecting");
  }

  /** A media attempt failed (rtc.js diagnosed why): say it in words, once per new reason, in the log too. */
  mediaProblem(p) {
    this.lastProblemData = p;
    this.problem.show(p);
    const seen = `${p.reason}:${p.gaveUp}`;
    if (seen !== this.lastProblem) this.note(...reasonNote(p), "warn");
    this.lastProblem = seen;
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

  /** "Supervisor is whispering" (or has joined the call) while a monitoring supervisor speaks. */
  showTalk() {
    if (!this.talkBanner) return;
    const on = this.talkMode === "whisper" || this.talkMode === "barge";
    this.talkBanner.hidden = !on;
    this.talkBanner.dataset.mode = this.talkMode;
    this.talkBanner.textContent = on ? t(this.talkMode === "whisper" ? "call.supervisor_whispering" : "call.supervisor_joined") : "";
  }

  signal(msg) {
    if (msg.type === "talk") {
      this.talkMode = msg.mode;
      this.showTalk();
    } else if (msg.type === "snapshot") this.addSnapshot(msg);
    else if (msg.type === "peer.left" && msg.party === "customer") {
      this.note("call.customer_left", {}, "warn");
      this.customerPresent("left");
    } else if (msg.type === "peer.joined" && msg.party === "customer") {
      this.note("call.customer_joined");
      this.customerPresent("present");
    } else if (msg.type === "joined" && Array.isArray(msg.peers)) {
      this.customerPresent(msg.peers.includes("customer") ? "present" : "waiting");
      // Whether this call is transcribed: the panel says so instead of staying empty.
      if (msg.transcription) {
        this.call.transcription = msg.transcription;
        this.transcript.transcription(msg.transcription);
      }
    }
    // A media timeout is explained by the diagnosis (mediaProblem), not as "something went wrong".
    else if (msg.type === "error" && msg.code !== "ice_timeout") {
      this.note("error.generic", { message: msg.message || msg.code }, "warn");
    }
  }

  /** Whether the customer is in the video room (present | waiting | left): the status says so while
   * this console's own media is up, so a black picture is not taken for a broken connection. */
  customerPresent(customer) {
    this.customer = customer;
    this.status.dataset.customer = customer;
    if (this.status.dataset.state === "connected") this.linkStatus("connected");
  }

  /** A line in the call log: kept as its translation key (re-rendered in a new language, persisted
   * with the call so a reload keeps the log). */
  note(key, params = {}, kind = "info") {
    const entry = { at: Date.now() / 1000, key, params, kind };
    this.call.log.push(entry);
    if (this.call.log.length > LOG_KEEP) this.call.log.splice(0, this.call.log.length - LOG_KEEP);
    this.onPersist(this.call);
    this.showNote(entry);
  }

  showNote(entry) {
    this.log.prepend(h("li", { class: entry.kind }, `${clock(entry.at - this.startedAt)} ${t(entry.key, entry.params)}`));
  }

  post(path, body = {}) {
    return this.api.post(`sessions/${encodeURIComponent(this.sessionId)}/${path}`, body);
  }

  afterAction(path, body, reply) {
    if (path === "push") {
      if (reply && reply.push) this.pushes.show(reply.push);
      this.note("call.pushed", { title: body.title });
    }
    else if (path === "authorisations") this.note("call.auth_sent");
    else if (path === "transfer") { this.note("call.transferred"); this.finish(); }
  }

  /** The customer answered a push: shown in the pushes card, and a line in the log naming it by its title. */
  answered(ev) {
    const title = ev.title || this.pushes.title(ev.push_id) || t("call.a_push");
    this.pushes.answered(ev);
    const key = ev.answer === "decline" ? "call.response_declined"
      : ev.kind === "signature_request" ? "call.response_signed"
        : ev.kind === "form" ? "call.response_confirmed" : "call.response_accepted";
    this.note(key, { title }, ev.answer === "decline" ? "warn" : "info");
  }

  toggleMute() {
    this.muted = !this.muted;
    this.applyTracks();
    this.showToggles();
  }

  toggleCamera() {
    this.cameraOff = !this.cameraOff;
    this.applyTracks();
    this.showToggles();
  }

  async toggleHold() {
    const hold = !this.onHold;
    this.holdBtn.disabled = true;
    try {
      await this.post(hold ? "hold" : "resume");
      // On hold the customer neither hears nor sees the teller.
      this.onHold = hold;
      this.applyTracks();
      this.showToggles();
      if (hold) this.note("call.on_hold");
    } catch (err) {
      this.note("error.generic", { message: err.message }, "warn");
    } finally {
      this.holdBtn.disabled = false;
    }
  }

  snapshot() {
    if (!this.link || !this.link.send({ type: "snapshot" })) {
      this.note("call.reconnecting", {}, "warn");
    }
  }

  /** A snapshot (from the node's socket, the platform's events or the call's history), once per url. */
  addSnapshot(msg, { quiet = false } = {}) {
    if (!msg.url || this.snapshots.has(msg.url)) return;
    this.snapshots.set(msg.url, msg);
    this.showSnapshot(msg);
    this.faceCheck.addSnapshot(msg);
    if (!quiet) this.note("call.snapshot_taken");
  }

  showSnapshot(msg) {
    // The node serves a call's snapshots to its parties only: the join token goes in the query.
    const url = new URL(msg.url, new URL(this.call.video.url, location.href));
    if (!url.searchParams.has("token")) url.searchParams.set("token", this.call.video.token);
    const faces = Array.isArray(msg.faces) ? msg.faces.length : Number(msg.faces || 0);
    this.shots.prepend(h("figure", { testid: "snapshot-item" },
      h("img", { src: url.href, alt: t("call.snapshot_taken"), width: "160" }),
      h("figcaption", {}, t("call.faces", { count: faces }))));
  }

  /** Platform events for this session. */
  event(ev) {
    switch (ev.type) {
      case "transcript": this.transcript.line(ev); break;
      case "keyword": this.transcript.keyword(ev); this.workOrder.keyword(ev); break;
      case "work_order.update": this.workOrder.update(ev.work_order); break;
      case "snapshot": this.addSnapshot(ev); break;
      case "id_card": this.idCards.add(ev); this.faceCheck.addCard(ev); break;
      case "id_check": this.faceCheck.event(ev); break;
      case "push.response": this.answered(ev); break;
      case "authorisation.result": {
        const granted = ev.state === "granted";
        this.note(granted ? "call.auth_granted" : "call.auth_refused", { reason: ev.decision_reason || "" },
          granted ? "info" : "warn");
        this.workOrder.authorisationResult();
        break;
      }
      case "video.rejoin": if (ev.video) this.moveTo(ev.video); break;
      case "session.ended": this.note("call.ended"); this.finish(); break;
      case "session.update":
        if (ev.session && ["ended", "wrapup", "wrap_up", "done"].includes(ev.session.state)) this.finish();
        else if (ev.session && ["on_hold", "active"].includes(ev.session.state)) {
          // Held or resumed from elsewhere (another console, the hold banner): the same here.
          const held = ev.session.state === "on_hold";
          if (held !== this.onHold) { this.onHold = held; this.applyTracks(); this.showToggles(); }
        }
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
      if (err.status !== 409) { this.note("error.generic", { message: err.message }, "warn"); this.endBtn.disabled = false; return; }
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
    if (this.faceCheck) this.faceCheck.destroy();
    if (this.pushes) this.pushes.destroy();
  }
}
