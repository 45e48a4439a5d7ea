// The customer's visit as the kiosk screen and the phone page both run it: screens, the service
// list, the ticket's place in the queue, the call, pushed forms and signatures one at a time, hang-up
// and the end screen. Each page configures what is its own (how its errors read, what else a screen
// change, a ticket update or the end of a visit means to it, the events only it handles).
// In the call the customer sees that it is recorded, who the teller is, how long it has lasted, and
// can mute the microphone or turn the camera off. Every text follows the language switch.
// When a call ends, the end screen asks for a 1-5 rating (rating.js): skippable, and it times out.

import { VideoCall } from "./call.js";
import { showPush } from "./push.js";
import { askRating } from "./rating.js";
import { language, mountLanguageSwitch, onLanguageChange, say, t } from "./i18n.js";

export const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

const CAMERA = { audio: true, video: { width: 640, height: 480 } };

/** The forecast wait as the customer reads it ("-" when there is none). */
export function formatWait(seconds) {
  if (seconds === undefined || seconds === null) return "-";
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? t("wait.seconds", { n: s }) : t("wait.minutes", { n: Math.round(s / 60) });
}

/** "m:ss" (or "h:mm:ss") for the call timer. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** A service's name in the page's language (the catalogue's translation, else its English name). */
export function serviceName(svc) {
  return (svc.names && svc.names[language()]) || svc.name || svc.code;
}

export class CustomerCall {
  // api: the page's Api (may be set later); friendly(err): the text a customer reads for an error;
  // onShow(screen), onTicket(ticket), onFinish(): the page's own part of each step, onFinish before
  // the end screen shows; onEvent(event): events this module does not handle; onRatingClosed(how):
  // the rating question closed ("rated", "skipped", "timeout"; not when the screen moved on).
  constructor({ api = null, friendly, onShow = () => {}, onTicket = () => {}, onFinish = () => {}, onEvent = () => {},
    onRatingClosed = () => {} }) {
    Object.assign(this, { api, friendly, onShow, onTicket, onFinish, onOtherEvent: onEvent, onRatingClosed,
      rating: null, endedSession: null });
    Object.assign(this, { events: null, ticket: null, sessionId: null, call: null, localStream: null,
      pushes: [], showingPush: false, screen: null, services: [], pick: null, connectedAt: null, timer: null,
      dropped: new Set() });
    $("leave-queue").addEventListener("click", async () => {
      try { await this.api.request("DELETE", `tickets/${this.ticket.id}`); this.finish("done.left_queue"); }
      catch (err) { this.error(this.friendly(err)); }
    });
    $("hang-up").addEventListener("click", () => {
      if (this.sessionId) this.api.request("POST", `sessions/${this.sessionId}/end`).catch(() => {});
      this.endCall("done.you_hung_up");
    });
    $("mute").addEventListener("click", () => this.setMuted($("mute").getAttribute("aria-pressed") !== "true"));
    $("camera").addEventListener("click", () => this.setCameraOff($("camera").getAttribute("aria-pressed") !== "true"));
    mountLanguageSwitch();
    onLanguageChange(() => {
      if (this.services.length) this.renderServices();
      if (this.ticket) {
        $("queue-wait").textContent = formatWait(this.ticket.estimated_wait_s);
        this.showNobodyAvailable(this.ticket);
      }
    });
  }

  show(screen) {
    // The rating belongs to the end screen of the call that ended: any other screen closes it.
    if (screen !== "done" && this.rating) this.rating.cancel();
    for (const s of document.querySelectorAll("main > [data-screen]")) s.hidden = s.dataset.screen !== screen;
    this.screen = screen;
    document.body.dataset.view = screen;
    this.onShow(screen);
  }

  error(message) { $("error").textContent = message || ""; }

  startEvents() {
    if (this.events) return;
    this.events = this.api.events((event) => this.onEvent(event), {
      onState: (s) => {
        const conn = $("connection");
        if (s === "open") { delete conn.dataset.i18n; conn.textContent = ""; }
        else say(conn, `conn.${s}`);
      },
    });
  }

  // One button per service the platform offers, named in the page's language; a press calls `pick(code)`.
  async listServices(pick) {
    const { services } = await this.api.request("GET", `services?lang=${language()}`);
    this.services = services;
    this.pick = pick;
    this.renderServices();
    this.show("services");
  }

  renderServices() {
    $("service-list").replaceChildren(...this.services.map((svc) => this.serviceButton(svc, "service", () => this.pick(svc.code))));
  }

  // A service's button; one nobody can serve now says so (the customer may still wait for it).
  serviceButton(svc, prefix, onPress) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.testid = `${prefix}-${svc.code}`;
    b.textContent = serviceName(svc);
    if (svc.staffed === false) {
      const note = say(document.createElement("small"), "services.unstaffed");
      note.className = "unstaffed";
      b.append(" ", note);
    }
    b.addEventListener("click", onPress);
    return b;
  }

  // Nobody signed in can serve the ticket's service: say so instead of a forecast, and offer the
  // services someone can serve now (leaving this queue for the one chosen).
  showNobodyAvailable(ticket) {
    const nobody = ticket.state === "waiting" && ticket.staffed === false;
    $("queue-estimate").hidden = nobody;
    $("no-teller").hidden = !nobody;
    if (!nobody) return;
    const svc = this.services.find((s) => s.code === ticket.service) || { code: ticket.service, name: ticket.service };
    say($("no-teller-message"), "wait.no_teller", { service: serviceName(svc) });
    const others = this.services.filter((s) => s.code !== ticket.service && s.staffed !== false);
    $("other-services-intro").hidden = !others.length;
    $("other-services").replaceChildren(...others.map((s) => this.serviceButton(s, "other-service",
      () => this.switchService(s.code).catch((err) => this.error(this.friendly(err))))));
  }

  async switchService(code) {
    const old = this.ticket;
    this.dropped.add(old.id);   // its "abandoned" update is not the end of this visit
    await this.api.request("DELETE", `tickets/${old.id}`);
    this.ticket = null;
    await this.pick(code);
  }

  // Throws what the platform refused; the page decides what a refusal means to it.
  async takeTicket(code) {
    await this.events.ready;   // subscribed before the ticket exists: no update can be missed
    const { ticket } = await this.api.request("POST", "tickets", { service: code });
    // A ready teller can be offered and accept before this answer arrives: the events have then
    // moved the visit on, and the queue screen must not come back over the call.
    if (this.screen === "call" || this.screen === "done") return;
    this.updateTicket(ticket);
    this.show("wait");
  }

  updateTicket(ticket) {
    if (!ticket || this.dropped.has(ticket.id) || (this.ticket && ticket.id !== this.ticket.id)) return;
    this.ticket = ticket;
    $("queue-position").textContent = ticket.position ?? "-";
    // Offered to a teller, the ticket has left the queue (position 0): "number 0" reads like an error.
    const next = ticket.position === 0 || ticket.state === "offered";
    $("queue-line").hidden = next;
    $("queue-next").hidden = !next;
    $("queue-wait").textContent = formatWait(ticket.estimated_wait_s);
    this.showNobodyAvailable(ticket);
    this.onTicket(ticket);
  }

  onEvent(event) {
    switch (event.type) {
      case "ticket.update": this.updateTicket(event.ticket); break;
      case "session.started": this.startCall(event).catch((err) => this.error(this.friendly(err))); break;
      case "video.rejoin": if (this.call) this.call.moveTo(event.video); break;
      case "push": this.pushes.push(event); this.nextPush(); break;
      // Ended by the teller. (After the customer's own hang-up the end screen already says so.)
      case "session.ended":
        if (this.screen === "call") this.endCall(event.reason === "no_media" ? "done.no_media" : "done.call_ended");
        break;
      default: this.onOtherEvent(event); break;
    }
  }

  async openCamera() {
    if (this.localStream) return;
    this.localStream = await navigator.mediaDevices.getUserMedia(CAMERA);
    $("local-video").srcObject = this.localStream;
  }

  // -- in the call ------------------------------------------------------------------------------

  /** The microphone off (the teller hears silence) or back on. */
  setMuted(muted) {
    for (const track of this.localStream ? this.localStream.getAudioTracks() : []) track.enabled = !muted;
    const b = $("mute");
    b.setAttribute("aria-pressed", String(muted));
    say(b, muted ? "call.unmute" : "call.mute");
    $("muted-note").hidden = !muted;
  }

  /** The camera off (the teller sees black) or back on. */
  setCameraOff(off) {
    for (const track of this.localStream ? this.localStream.getVideoTracks() : []) track.enabled = !off;
    const b = $("camera");
    b.setAttribute("aria-pressed", String(off));
    say(b, off ? "call.camera_on" : "call.camera_off");
    $("camera-off-note").hidden = !off;
    $("local-video").classList.toggle("off", off);
  }

  showCallState(s) {
    const el = $("call-state");
    el.dataset.state = s;
    say(el, `call.state.${s}`);
    // The timer runs from when the call first connected (a rejoin does not restart it).
    if (s === "connected" && this.connectedAt === null) {
      this.connectedAt = Date.now();
      this.timer = setInterval(() => this.tick(), 1000);
      this.tick();
    }
  }

  tick() {
    if (this.connectedAt !== null) $("call-timer").textContent = clock((Date.now() - this.connectedAt) / 1000);
  }

  stopTimer() {
    clearInterval(this.timer);
    this.timer = null;
    this.connectedAt = null;
  }

  async startCall(event) {
    const session = event.session || {};
    this.sessionId = typeof session === "object" ? session.id : session;
    // A transferred call's next leg starts afresh: the new teller's name, the timer from its start.
    this.stopTimer();
    $("call-timer").textContent = clock(0);
    if (event.teller_name) say($("teller-name"), "call.teller", { name: event.teller_name });
    else say($("teller-name"), "call.teller_joining");
    this.show("call");
    await this.openCamera();
    this.setMuted(false);
    this.setCameraOff(false);
    const join = async () => (await this.api.request("POST", `sessions/${this.sessionId}/join`)).video;
    if (this.call) this.call.leave();
    $("supervisor-note").hidden = true;
    this.call = new VideoCall({
      grant: event.video || (await join()), localStream: this.localStream, refresh: join,
      onRemoteStream: (stream) => { const v = $("remote-video"); if (v.srcObject !== stream) v.srcObject = stream; },
      onSupervisorTrack: (track) => {
        const a = $("supervisor-audio");
        a.srcObject = new MediaStream([track]);
        a.play().catch(() => {});
      },
      onTalk: (mode) => { $("supervisor-note").hidden = mode !== "barge"; },
      onState: (s) => {
        this.showCallState(s);
        // Media is up: the session becomes active (idempotent after a rejoin).
        if (s === "connected") this.api.request("POST", `sessions/${this.sessionId}/activate`).catch(() => {});
      },
    });
    await this.call.join();
  }

  // Pushes show one at a time, in the order they came, beside the teller's video (never over it).
  async nextPush() {
    if (this.showingPush || !this.pushes.length) return;
    this.showingPush = true;
    const push = this.pushes.shift();
    const panel = $("push-overlay");
    try {
      const answer = await showPush(panel, push);
      await this.api.request("POST", `sessions/${push.session_id || this.sessionId}/responses`,
        { push_id: push.push_id, ...answer });
    } catch (err) { this.error(this.friendly(err)); }
    panel.hidden = true;
    panel.replaceChildren();
    this.showingPush = false;
    this.nextPush();
  }

  endCall(key) {
    if (this.call) this.call.leave();
    this.call = null;
    this.endedSession = this.sessionId;
    this.finish(key);
  }

  /** Ask the customer to rate the call that ended (`session_id`), on the end screen. */
  askRating(sessionId) {
    if (this.rating) this.rating.cancel();
    const rating = askRating($("rating"), {
      friendly: this.friendly,
      send: (score, comment) => this.api.request("POST", `sessions/${sessionId}/rating`, { score, comment }),
    });
    this.rating = rating;
    rating.closed.then((how) => {
      if (this.rating === rating) this.rating = null;
      if (how !== "cancelled") this.onRatingClosed(how);
    });
  }

  /** The end screen with the string `key` (the visit is over: its call, form and camera go). */
  finish(key) {
    say($("done-message"), key);
    this.stopTimer();
    // A form or signature still open belongs to the call that ended: close it, and let the next
    // call's pushes show (the unanswered one would otherwise block them).
    this.pushes.length = 0;
    this.showingPush = false;
    $("push-overlay").hidden = true;
    $("push-overlay").replaceChildren();
    if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
    this.localStream = null;
    const ended = this.endedSession;
    this.endedSession = null;
    this.onFinish();
    this.show("done");
    if (ended) this.askRating(ended);
    else $("rating").hidden = true;
  }
}
