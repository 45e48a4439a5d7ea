// The kiosk screen, served by the kiosk app on loopback. REST goes through the app's allow-listed
// proxy (api/...), events through its socket proxy (events), so the device credential never reaches
// the page. The call, pushed forms and the signature pad are the phone page's modules.

import { Api, ApiError, wsUrl } from "../shared/js/api.js";
import { VideoCall } from "../shared/js/call.js";
import { showPush } from "../shared/js/push.js";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const state = { api: null, ticket: null, sessionId: null, call: null, localStream: null, pushes: [],
  showingPush: false, playlist: [], playing: 0, config: null };
window.cloudbankKiosk = state;

function show(screen) {
  for (const s of document.querySelectorAll("main > [data-screen]")) s.hidden = s.dataset.screen !== screen;
  document.body.dataset.view = screen;
  if (screen === "idle") playNext(); else stopPlaylist();
}

function error(message) { $("error").textContent = message || ""; }
const friendly = (err) => (err instanceof ApiError || (err && err.message) ? err.message : String(err));

// -- idle playlist (from the app's verified on-disk cache) --------------------------------------

let playTimer = null;

function stopPlaylist() {
  clearTimeout(playTimer);
  playTimer = null;
  $("playlist").replaceChildren();
}

function playNext() {
  clearTimeout(playTimer);
  const box = $("playlist");
  if (!state.playlist.length) { box.textContent = "Welcome"; return; }
  const item = state.playlist[state.playing % state.playlist.length];
  state.playing += 1;
  let node;
  if (item.kind === "video") {
    node = document.createElement("video");
    Object.assign(node, { src: item.url, muted: true, autoplay: true, playsInline: true });
    node.addEventListener("ended", playNext);
  } else {
    node = document.createElement("img");
    node.src = item.url;
    node.alt = item.name || "";
  }
  node.dataset.testid = "playlist-item";
  node.dataset.item = item.id;
  box.replaceChildren(node);
  playTimer = setTimeout(playNext, Math.max(1, item.duration_s) * 1000);
}

// -- services, queue, call ----------------------------------------------------------------------

$("start").addEventListener("click", async () => {
  error();
  try {
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
  } catch (err) { error(friendly(err)); }
});

$("back-to-idle").addEventListener("click", () => show("idle"));

async function takeTicket(code) {
  error();
  try {
    await state.events.ready;
    const { ticket } = await state.api.request("POST", "tickets", { service: code });
    updateTicket(ticket);
    show("wait");
  } catch (err) {
    // A visit this kiosk never finished (the page reloaded, the app restarted) still holds its
    // place: carry on with it rather than tell the customer to "leave it first".
    const held = err instanceof ApiError && err.status === 409 ? err.body.ticket : null;
    if (held && ["waiting", "offered"].includes(held.state)) {
      state.ticket = null;
      updateTicket(held);
      show("wait");
      return;
    }
    error(friendly(err));
  }
}

function formatWait(seconds) {
  if (seconds === undefined || seconds === null) return "-";
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.round(s / 60)} min`;
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
  if (ticket.state === "abandoned" && !state.call) finish("You left the queue.");
}

$("leave-queue").addEventListener("click", async () => {
  try { await state.api.request("DELETE", `tickets/${state.ticket.id}`); finish("You left the queue."); }
  catch (err) { error(friendly(err)); }
});

function onEvent(event) {
  switch (event.type) {
    case "ticket.update": updateTicket(event.ticket); break;
    case "session.started": startCall(event).catch((err) => error(friendly(err))); break;
    case "video.rejoin": if (state.call) state.call.moveTo(event.video); break;
    case "push": state.pushes.push(event); nextPush(); break;
    case "session.ended": endCall("The call has ended. Thank you."); break;
    default: break;
  }
}

async function startCall(event) {
  const session = event.session || {};
  state.sessionId = typeof session === "object" ? session.id : session;
  show("call");
  state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  $("local-video").srcObject = state.localStream;
  const join = async () => (await state.api.request("POST", `sessions/${state.sessionId}/join`)).video;
  state.call = new VideoCall({
    grant: event.video || (await join()), localStream: state.localStream, refresh: join,
    onRemoteStream: (stream) => { const v = $("remote-video"); if (v.srcObject !== stream) v.srcObject = stream; },
    onState: (s) => {
      $("call-state").textContent = s;
      if (s === "connected") state.api.request("POST", `sessions/${state.sessionId}/activate`).catch(() => {});
    },
  });
  await state.call.join();
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

// The card reader's stand-in: the kiosk app reads the configured image file, the page shows it and,
// in a call, the app sends it to the teller (the file is read there; the image does not pass through here).
$("read-id-card").addEventListener("click", async () => {
  const status = $("id-card-status");
  try {
    const resp = await fetch("id-card.json");
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.message || "the card could not be read");
    const img = $("id-card-preview");
    img.src = body.data_url;
    img.hidden = false;
    if (!state.sessionId) return;
    status.textContent = "Sending your ID card to the teller...";
    const sent = await fetch("id-card/send", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session_id: state.sessionId }),
    });
    const answer = await sent.json();
    if (!sent.ok) throw new Error(answer.message || "the card could not be sent");
    status.textContent = "Your ID card was sent to the teller.";
    status.dataset.sha256 = answer.id_card.sha256;
  } catch (err) {
    status.textContent = "";
    error(friendly(err));
  }
});

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
  // The card shown belongs to this customer: the next one must not see it.
  $("id-card-preview").hidden = true;
  $("id-card-preview").removeAttribute("src");
  $("id-card-status").textContent = "";
  if (state.localStream) for (const t of state.localStream.getTracks()) t.stop();
  state.localStream = null;
  state.ticket = null;
  state.sessionId = null;
  show("done");
  setTimeout(() => { if (document.body.dataset.view === "done") show("idle"); }, 15000);
}

$("done").addEventListener("click", () => show("idle"));

// -- start ----------------------------------------------------------------------------------------

async function start() {
  const config = await (await fetch("state.json")).json();
  state.config = config;
  state.playlist = config.playlist || [];
  $("id-card-panel").hidden = !config.has_id_card;
  state.api = new Api({ base: "api/", eventsUrl: wsUrl("/events"), token: null });
  state.events = state.api.events(onEvent, {
    onState: (s) => { $("connection").textContent = s === "open" ? "" : s; },
  });
  show("idle");
}

start().catch((err) => error(friendly(err)));
