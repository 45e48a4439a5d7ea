// The phone page: verify the number, pick a service, wait (or book a call-back), the call,
// pushed forms and signature. Everything the customer touches has a data-testid.

import { Api, ApiError, wsUrl } from "./api.js";
import { VideoCall } from "./call.js";
import { showPush } from "./push.js";

const TOKEN_KEY = "cloudbank.phone.token";
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

const state = {
  api: new Api({ base: "/api/", eventsUrl: wsUrl("/api/ws"), token: sessionStorage.getItem(TOKEN_KEY) }),
  challenge: null, ticket: null, sessionId: null, call: null, events: null, localStream: null,
  pushes: [], showingPush: false,
};
window.cloudbankPhone = state;   // for debugging and for tests that read the call's statistics

function show(screen) {
  for (const s of document.querySelectorAll("main > [data-screen]")) s.hidden = s.dataset.screen !== screen;
  state.screen = screen;
  document.body.dataset.view = screen;
}

function error(message) { $("error").textContent = message || ""; }

function friendly(err) {
  if (err instanceof ApiError) {
    // The platform's messages are written for developers ("phone must be a number of 6-15 digits").
    if (err.body.field === "phone") return "Enter your mobile number: 6 to 15 digits, for example +82 10 1234 5678.";
    const m = String(err.message || "Something went wrong. Please try again.");
    return m.charAt(0).toUpperCase() + m.slice(1) + (/[.!?]$/.test(m) ? "" : ".");
  }
  return err && err.message ? err.message : String(err);
}

function formatWait(seconds) {
  if (seconds === undefined || seconds === null) return "-";
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.round(s / 60)} min`;
}

// -- verify ------------------------------------------------------------------------------------

$("phone-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  error();
  try {
    const body = await state.api.request("POST", "phone/start", { phone: $("phone-number").value.trim() });
    state.challenge = body.challenge_id;
    $("code-form").hidden = false;
    $("otp-code").focus();
  } catch (err) { error(friendly(err)); }
});

$("code-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  error();
  try {
    const body = await state.api.request("POST", "phone/verify", { challenge_id: state.challenge, code: $("otp-code").value.trim() });
    state.api.token = body.token;
    sessionStorage.setItem(TOKEN_KEY, body.token);
    await signedIn();
  } catch (err) { error(friendly(err)); }
});

// -- services and queue ------------------------------------------------------------------------

async function signedIn() {
  startEvents();
  const { services } = await state.api.request("GET", "services");
  const list = $("service-list");
  list.replaceChildren();
  for (const svc of services) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.testid = `service-${svc.code}`;
    b.textContent = svc.name;
    b.addEventListener("click", () => takeTicket(svc.code));
    list.append(b);
  }
  show("services");
}

function startEvents() {
  if (state.events) return;
  state.events = state.api.events(onEvent, {
    onState: (s) => { $("connection").textContent = s === "open" ? "" : s; },
  });
}

async function takeTicket(code) {
  error();
  try {
    await state.events.ready;   // subscribed before the ticket exists: no update can be missed
    const { ticket } = await state.api.request("POST", "tickets", { service: code });
    updateTicket(ticket);
    show("wait");
    // Ask for camera and microphone while waiting, so the call starts at once.
    state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    $("local-video").srcObject = state.localStream;
  } catch (err) { error(friendly(err)); }
}

function updateTicket(ticket) {
  if (!ticket || (state.ticket && ticket.id !== state.ticket.id)) return;
  state.ticket = ticket;
  $("queue-position").textContent = ticket.position ?? "-";
  // Offered to a teller, the ticket has left the queue (position 0): "number 0" reads like an error.
  const next = ticket.position === 0 || ticket.state === "offered";
  $("queue-line").hidden = next;
  $("queue-next").hidden = !next;
  $("queue-wait").textContent = formatWait(ticket.estimated_wait_s);
  // A call-back is offered only when the forecast wait is long (the platform decides).
  const offered = Boolean(ticket.callback_offer);
  $("callback-offer").hidden = !offered;
  $("book-callback").hidden = !offered;
  if (ticket.state === "callback") finish("We will call you back. You can close this page.");
  else if (ticket.state === "abandoned") finish("You left the queue.");
}

$("book-callback").addEventListener("click", async () => {
  try {
    const body = await state.api.request("POST", `tickets/${state.ticket.id}/callback`, {});
    if (body.ticket) updateTicket(body.ticket);
    else finish("We will call you back. You can close this page.");
  } catch (err) { error(friendly(err)); }
});

$("leave-queue").addEventListener("click", async () => {
  try { await state.api.request("DELETE", `tickets/${state.ticket.id}`); finish("You left the queue."); }
  catch (err) { error(friendly(err)); }
});

// -- events ------------------------------------------------------------------------------------

function onEvent(event) {
  switch (event.type) {
    case "ticket.update": updateTicket(event.ticket); break;
    case "ticket.callback_offer": updateTicket({ ...event.ticket, callback_offer: true }); break;
    case "session.started": startCall(event); break;
    case "video.rejoin": if (state.call) state.call.moveTo(event.video); break;
    case "push": state.pushes.push(event); nextPush(); break;
    case "session.ended": endCall("The call has ended. Thank you."); break;
    case "error": console.warn("platform:", event.code, event.message); break;
    default: break;
  }
}

async function startCall(event) {
  const session = event.session || {};
  state.sessionId = typeof session === "object" ? session.id : session;
  show("call");
  if (!state.localStream) {
    state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    $("local-video").srcObject = state.localStream;
  }
  const grant = event.video || (await state.api.request("POST", `sessions/${state.sessionId}/join`)).video;
  state.call = new VideoCall({
    grant, localStream: state.localStream,
    refresh: async () => (await state.api.request("POST", `sessions/${state.sessionId}/join`)).video,
    onRemoteStream: (stream) => { const v = $("remote-video"); if (v.srcObject !== stream) v.srcObject = stream; },
    onState: (s) => {
      $("call-state").textContent = s;
      // Media is up: the session becomes active (idempotent after a rejoin).
      if (s === "connected") state.api.request("POST", `sessions/${state.sessionId}/activate`).catch(() => {});
    },
  });
  try { await state.call.join(); } catch (err) { error(friendly(err)); }
}

async function nextPush() {
  if (state.showingPush || !state.pushes.length) return;
  state.showingPush = true;
  const push = state.pushes.shift();
  const overlay = $("push-overlay");
  try {
    const answer = await showPush(overlay, push);
    await state.api.request("POST", `sessions/${push.session_id || state.sessionId}/responses`,
      { push_id: push.push_id, ...answer });
  } catch (err) { error(friendly(err)); }
  overlay.hidden = true;
  overlay.replaceChildren();
  state.showingPush = false;
  nextPush();
}

$("hang-up").addEventListener("click", () => {
  if (state.sessionId) state.api.request("POST", `sessions/${state.sessionId}/end`).catch(() => {});
  endCall("You ended the call.");
});

function endCall(message) {
  if (state.call) state.call.leave();
  state.call = null;
  finish(message);
}

function finish(message) {
  $("done-message").textContent = message;
  // A form or signature still open belongs to the call that ended: close it, and let the next
  // call's pushes show (the unanswered one would otherwise block them).
  state.pushes.length = 0;
  state.showingPush = false;
  $("push-overlay").hidden = true;
  $("push-overlay").replaceChildren();
  if (state.localStream) for (const t of state.localStream.getTracks()) t.stop();
  state.localStream = null;
  show("done");
}

$("start-over").addEventListener("click", () => { state.ticket = null; signedIn().catch((e) => error(friendly(e))); });

// -- start -------------------------------------------------------------------------------------

if (state.api.token) {
  signedIn().catch(() => { sessionStorage.removeItem(TOKEN_KEY); state.api.token = null; show("verify"); });
} else {
  show("verify");
}
