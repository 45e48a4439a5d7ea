// The phone page: verify the number, pick a service, wait (or book a call-back), the call,
// pushed forms and signature. Everything the customer touches has a data-testid. The visit from the
// queue on is customer_call.js (shared with the kiosk screen); the page's own parts are the number's
// verification, the call-back and asking for the camera while the customer waits.

import { Api, ApiError, wsUrl } from "./api.js";
import { $, CustomerCall } from "./customer_call.js";
import { language, t } from "./i18n.js";
import { mountIdPhoto } from "./id_photo.js";

const TOKEN_KEY = "cloudbank.phone.token";
const CALLBACK_BOOKED = "done.callback_booked";

function friendly(err) {
  if (err instanceof ApiError) {
    // The platform's messages are written for developers ("phone must be a number of 6-15 digits").
    if (err.body.field === "phone") return t("verify.bad_number");
    if (err.code === "unreachable") return t("error.unreachable");
    if (language() !== "en") {
      // The platform writes its messages in English: say what is known in the customer's language.
      if (err.status === 401 && "attempts_left" in err.body) return t("verify.wrong_code");
      if (err.status === 401) return t("verify.code_expired");
      if (err.status === 429) return t("error.too_many");
      return t("error.generic");
    }
    const m = String(err.message || t("error.generic"));
    return m.charAt(0).toUpperCase() + m.slice(1) + (/[.!?]$/.test(m) ? "" : ".");
  }
  return err && err.message ? err.message : String(err);
}

const visit = new CustomerCall({
  api: new Api({ base: "/api/", eventsUrl: wsUrl("/api/ws"), token: sessionStorage.getItem(TOKEN_KEY) }),
  friendly,
  onTicket: (ticket) => {
    // A call-back is offered only when the forecast wait is long (the platform decides).
    const offered = Boolean(ticket.callback_offer);
    $("callback-offer").hidden = !offered;
    $("book-callback").hidden = !offered;
    if (ticket.state === "callback") visit.finish(CALLBACK_BOOKED);
    else if (ticket.state === "abandoned") visit.finish("done.left_queue");
  },
  onEvent: (event) => {
    switch (event.type) {
      case "ticket.callback_offer": visit.updateTicket({ ...event.ticket, callback_offer: true }); break;
      case "error": console.warn("platform:", event.code, event.message); break;
      default: break;
    }
  },
});
window.cloudbankPhone = visit;   // for debugging and for tests that read the call's statistics
mountIdPhoto({ api: visit.api, sessionId: () => visit.sessionId, friendly });
const error = (message) => visit.error(message);
let challenge = null;

// -- verify ------------------------------------------------------------------------------------

$("phone-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  error();
  try {
    const body = await visit.api.request("POST", "phone/start", { phone: $("phone-number").value.trim() });
    challenge = body.challenge_id;
    $("code-form").hidden = false;
    $("otp-code").focus();
  } catch (err) { error(friendly(err)); }
});

$("code-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  error();
  try {
    const body = await visit.api.request("POST", "phone/verify", { challenge_id: challenge, code: $("otp-code").value.trim() });
    visit.api.token = body.token;
    sessionStorage.setItem(TOKEN_KEY, body.token);
    await signedIn();
  } catch (err) { error(friendly(err)); }
});

// -- services and queue ------------------------------------------------------------------------

async function signedIn() {
  visit.startEvents();
  await visit.listServices(takeTicket);
}

async function takeTicket(code) {
  error();
  try {
    await visit.takeTicket(code);
    // Ask for camera and microphone while waiting, so the call starts at once.
    await visit.openCamera();
  } catch (err) { error(friendly(err)); }
}

$("book-callback").addEventListener("click", async () => {
  try {
    const body = await visit.api.request("POST", `tickets/${visit.ticket.id}/callback`, {});
    if (body.ticket) visit.updateTicket(body.ticket);
    else visit.finish(CALLBACK_BOOKED);
  } catch (err) { error(friendly(err)); }
});

$("start-over").addEventListener("click", () => { visit.ticket = null; signedIn().catch((e) => error(friendly(e))); });

// -- start -------------------------------------------------------------------------------------

if (visit.api.token) {
  signedIn().catch(() => { sessionStorage.removeItem(TOKEN_KEY); visit.api.token = null; visit.show("verify"); });
} else {
  visit.show("verify");
}
