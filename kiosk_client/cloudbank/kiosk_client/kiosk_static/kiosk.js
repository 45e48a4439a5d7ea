// The kiosk screen, served by the kiosk app on loopback. REST goes through the app's allow-listed
// proxy (api/...), events through its socket proxy (events), so the device credential never reaches
// the page. The visit (queue, call, pushed forms, signature, hang-up) is the phone page's
// customer_call.js (with the rating at the end); what is the kiosk's own is the idle playlist and the
// ID card reader, and that a rating skipped or timed out goes back to the idle screen.

import { Api, ApiError, wsUrl } from "../shared/js/api.js";
import { $, CustomerCall } from "../shared/js/customer_call.js";
import { language, resetLanguage, say, t } from "../shared/js/i18n.js";

// The platform and the app write their messages in English; another language gets its own generic line.
const friendly = (err) => (language() !== "en" ? t("error.generic")
  : err instanceof ApiError || (err && err.message) ? err.message : String(err));
const state = { playlist: [], playing: 0, config: null };
const visit = new CustomerCall({
  friendly,
  // Back to idle, the screen is the next customer's: in the kiosk's own language again.
  onShow: (screen) => { if (screen === "idle") { resetLanguage(); playNext(); } else stopPlaylist(); },
  // A visit left from elsewhere while still waiting ends here too.
  onTicket: (ticket) => { if (ticket.state === "abandoned" && !visit.call) visit.finish("done.left_queue"); },
  onFinish: () => {
    // The card shown belongs to this customer: the next one must not see it.
    $("id-card-preview").hidden = true;
    $("id-card-preview").removeAttribute("src");
    delete $("id-card-status").dataset.i18n;
    $("id-card-status").textContent = "";
    visit.ticket = null;
    visit.sessionId = null;
    setTimeout(() => { if (document.body.dataset.view === "done" && !visit.rating) visit.show("idle"); }, 15000);
  },
  // Skipped or timed out: the screen is the next customer's at once; rated: after the thanks.
  onRatingClosed: (how) => {
    if (how !== "rated") visit.show("idle");
    else setTimeout(() => { if (document.body.dataset.view === "done" && !visit.rating) visit.show("idle"); }, 5000);
  },
});
window.cloudbankKiosk = visit;
const error = (message) => visit.error(message);

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
  if (!state.playlist.length) { box.replaceChildren(say(document.createElement("span"), "idle.welcome")); return; }
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

// -- services and queue -------------------------------------------------------------------------

$("start").addEventListener("click", async () => {
  error();
  try { await visit.listServices(takeTicket); } catch (err) { error(friendly(err)); }
});

$("back-to-idle").addEventListener("click", () => visit.show("idle"));

async function takeTicket(code) {
  error();
  try {
    await visit.takeTicket(code);
  } catch (err) {
    // A visit this kiosk never finished (the page reloaded, the app restarted) still holds its
    // place: carry on with it rather than tell the customer to "leave it first".
    const held = err instanceof ApiError && err.status === 409 ? err.body.ticket : null;
    if (held && ["waiting", "offered"].includes(held.state)) {
      visit.ticket = null;
      visit.updateTicket(held);
      visit.show("wait");
      return;
    }
    error(friendly(err));
  }
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
    if (!visit.sessionId) return;
    say(status, "id_card.sending");
    const sent = await fetch("id-card/send", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session_id: visit.sessionId }),
    });
    const answer = await sent.json();
    if (!sent.ok) throw new Error(answer.message || "the card could not be sent");
    say(status, "id_card.sent");
    status.dataset.sha256 = answer.id_card.sha256;
  } catch (err) {
    delete status.dataset.i18n;
    status.textContent = "";
    error(friendly(err));
  }
});

$("done").addEventListener("click", () => visit.show("idle"));

// -- start ----------------------------------------------------------------------------------------

async function start() {
  const config = await (await fetch("state.json")).json();
  state.config = config;
  state.playlist = config.playlist || [];
  $("id-card-panel").hidden = !config.has_id_card;
  visit.api = new Api({ base: "api/", eventsUrl: wsUrl("/events"), token: null });
  visit.startEvents();
  visit.show("idle");
}

start().catch((err) => error(friendly(err)));
