// The customer's visit as the kiosk screen and the phone page both run it: screens, the service
// list, the ticket's place in the queue, the call, pushed forms and signatures one at a time, hang-up
// and the end screen. Each page configures what is its own (how its errors read, what else a screen
// change, a ticket update or the end of a visit means to it, the events only it handles).

import { VideoCall } from "./call.js";
import { showPush } from "./push.js";

export const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

const CAMERA = { audio: true, video: { width: 640, height: 480 } };

export function formatWait(seconds) {
  if (seconds === undefined || seconds === null) return "-";
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.round(s / 60)} min`;
}

export class CustomerCall {
  // api: the page's Api (may be set later); friendly(err): the text a customer reads for an error;
  // onShow(screen), onTicket(ticket), onFinish(): the page's own part of each step, onFinish before
  // the end screen shows; onEvent(event): events this module does not handle.
  constructor({ api = null, friendly, onShow = () => {}, onTicket = () => {}, onFinish = () => {}, onEvent = () => {} }) {
    Object.assign(this, { api, friendly, onShow, onTicket, onFinish, onOtherEvent: onEvent });
    Object.assign(this, { events: null, ticket: null, sessionId: null, call: null, localStream: null,
      pushes: [], showingPush: false, screen: null });
    $("leave-queue").addEventListener("click", async () => {
      try { await this.api.request("DELETE", `tickets/${this.ticket.id}`); this.finish("You left the queue."); }
      catch (err) { this.error(this.friendly(err)); }
    });
    $("hang-up").addEventListener("click", () => {
      if (this.sessionId) this.api.request("POST", `sessions/${this.sessionId}/end`).catch(() => {});
      this.endCall("You ended the call.");
    });
  }

  show(screen) {
    for (const s of document.querySelectorAll("main > [data-screen]")) s.hidden = s.dataset.screen !== screen;
    this.screen = screen;
    document.body.dataset.view = screen;
    this.onShow(screen);
  }

  error(message) { $("error").textContent = message || ""; }

  startEvents() {
    if (this.events) return;
    this.events = this.api.events((event) => this.onEvent(event), {
      onState: (s) => { $("connection").textContent = s === "open" ? "" : s; },
    });
  }

  // One button per service the platform offers; a press calls `pick(code)`.
  async listServices(pick) {
    const { services } = await this.api.request("GET", "services");
    const list = $("service-list");
    list.replaceChildren();
    for (const svc of services) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.testid = `service-${svc.code}`;
      b.textContent = svc.name;
      b.addEventListener("click", () => pick(svc.code));
      list.append(b);
    }
    this.show("services");
  }

  // Throws what the platform refused; the page decides what a refusal means to it.
  async takeTicket(code) {
    await this.events.ready;   // subscribed before the ticket exists: no update can be missed
    const { ticket } = await this.api.request("POST", "tickets", { service: code });
    this.updateTicket(ticket);
    this.show("wait");
  }

  updateTicket(ticket) {
    if (!ticket || (this.ticket && ticket.id !== this.ticket.id)) return;
    this.ticket = ticket;
    $("queue-position").textContent = ticket.position ?? "-";
    // Offered to a teller, the ticket has left the queue (position 0): "number 0" reads like an error.
    const next = ticket.position === 0 || ticket.state === "offered";
    $("queue-line").hidden = next;
    $("queue-next").hidden = !next;
    $("queue-wait").textContent = formatWait(ticket.estimated_wait_s);
    this.onTicket(ticket);
  }

  onEvent(event) {
    switch (event.type) {
      case "ticket.update": this.updateTicket(event.ticket); break;
      case "session.started": this.startCall(event).catch((err) => this.error(this.friendly(err))); break;
      case "video.rejoin": if (this.call) this.call.moveTo(event.video); break;
      case "push": this.pushes.push(event); this.nextPush(); break;
      case "session.ended": this.endCall("The call has ended. Thank you."); break;
      default: this.onOtherEvent(event); break;
    }
  }

  async openCamera() {
    if (this.localStream) return;
    this.localStream = await navigator.mediaDevices.getUserMedia(CAMERA);
    $("local-video").srcObject = this.localStream;
  }

  async startCall(event) {
    const session = event.session || {};
    this.sessionId = typeof session === "object" ? session.id : session;
    this.show("call");
    await this.openCamera();
    const join = async () => (await this.api.request("POST", `sessions/${this.sessionId}/join`)).video;
    this.call = new VideoCall({
      grant: event.video || (await join()), localStream: this.localStream, refresh: join,
      onRemoteStream: (stream) => { const v = $("remote-video"); if (v.srcObject !== stream) v.srcObject = stream; },
      onState: (s) => {
        $("call-state").textContent = s;
        // Media is up: the session becomes active (idempotent after a rejoin).
        if (s === "connected") this.api.request("POST", `sessions/${this.sessionId}/activate`).catch(() => {});
      },
    });
    await this.call.join();
  }

  // Pushes show one at a time, in the order they came.
  async nextPush() {
    if (this.showingPush || !this.pushes.length) return;
    this.showingPush = true;
    const push = this.pushes.shift();
    const overlay = $("push-overlay");
    try {
      const answer = await showPush(overlay, push);
      await this.api.request("POST", `sessions/${push.session_id || this.sessionId}/responses`,
        { push_id: push.push_id, ...answer });
    } catch (err) { this.error(this.friendly(err)); }
    overlay.hidden = true;
    overlay.replaceChildren();
    this.showingPush = false;
    this.nextPush();
  }

  endCall(message) {
    if (this.call) this.call.leave();
    this.call = null;
    this.finish(message);
  }

  finish(message) {
    $("done-message").textContent = message;
    // A form or signature still open belongs to the call that ended: close it, and let the next
    // call's pushes show (the unanswered one would otherwise block them).
    this.pushes.length = 0;
    this.showingPush = false;
    $("push-overlay").hidden = true;
    $("push-overlay").replaceChildren();
    if (this.localStream) for (const t of this.localStream.getTracks()) t.stop();
    this.localStream = null;
    this.onFinish();
    this.show("done");
  }
}
