// An offered call: rings (sound + a pulsing card), shows who is waiting and why, counts down to
// the ring timeout, and lets the teller accept or decline with the mouse or the keyboard.
import { h, fill, clock } from "./dom.js";
import { t, label } from "./i18n.js";

/** Seconds left before `offer.expires_at` (epoch seconds), using the server's clock offset. */
function secondsLeft(offer, skew) {
  return Math.max(0, Math.ceil(offer.expires_at - (Date.now() / 1000 + skew)));
}

export class OfferCard {
  /** layer: where the card goes; onAccept/onDecline(offer) return promises. */
  constructor(layer, ringer, { onAccept, onDecline }) {
    this.layer = layer;
    this.ringer = ringer;
    this.onAccept = onAccept;
    this.onDecline = onDecline;
    this.offer = null;
    this.timer = null;
    this.received = 0;
  }

  show(offer) {
    this.close();
    this.offer = offer;
    this.received = Date.now();
    // The server says how long the customer had waited when it sent the offer; count on from there.
    const waitedAt = Number(offer.waited_s) || 0;
    // expires_at is on the server's clock. The event's stream position starts with the server's time
    // in ms when it was published, which tells how far this computer's clock is off.
    const published = Number(String(offer.stream_id || "").split("-")[0]) / 1000;
    const skew = published > 1e9 ? published - Date.now() / 1000 : 0;
    const channel = offer.channel === "phone"
      ? t("offer.channel.phone")
      : t("offer.channel.kiosk", { branch: offer.branch_name || offer.branch || "?" });
    const countdown = h("p", { class: "countdown", testid: "offer-countdown", "aria-live": "off" });
    const waited = h("dd", { testid: "offer-waited" });
    const accept = h("button", { type: "button", class: "primary big", testid: "offer-accept" }, t("offer.accept"));
    const decline = h("button", { type: "button", class: "big", testid: "offer-decline" }, t("offer.decline"));
    const error = h("p", { class: "form-error", testid: "offer-error", role: "alert" });
    const busy = (on) => { accept.disabled = on; decline.disabled = on; };
    accept.addEventListener("click", async () => {
      busy(true);
      try { await this.onAccept(offer); this.close(); } catch (err) { error.textContent = err.message; busy(false); }
    });
    decline.addEventListener("click", async () => {
      busy(true);
      try { await this.onDecline(offer); this.close(); } catch (err) { error.textContent = err.message; busy(false); }
    });
    const card = h("section", { class: "offer ringing", testid: "offer", role: "alertdialog",
      "aria-labelledby": "offer-title", "aria-describedby": "offer-details" },
      h("h2", { id: "offer-title" }, t("offer.title")),
      h("dl", { id: "offer-details", class: "facts" },
        h("dt", {}, t("offer.service")), h("dd", { testid: "offer-service" }, offer.service_name || offer.service),
        h("dt", {}, t("offer.channel")), h("dd", { testid: "offer-channel" }, channel),
        h("dt", {}, t("offer.priority")),
        h("dd", { testid: "offer-priority", class: `prio prio-${offer.priority || "normal"}` },
          label("priority", offer.priority || "normal")),
        h("dt", {}, t("offer.waited")), waited),
      // The last call's wrap-up form is still open: say what accepting does with it.
      offer.open_wrapup ? h("p", { class: "offer-wrapup", testid: "offer-wrapup-open" }, t("offer.wrapup_open")) : "",
      countdown, error,
      h("div", { class: "actions" }, accept, decline));
    card.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") decline.click();
    });
    fill(this.layer, card);
    const tick = () => {
      const left = secondsLeft(offer, skew);
      countdown.textContent = t("offer.expires", { seconds: left });
      waited.textContent = clock(waitedAt + (Date.now() - this.received) / 1000);
      if (left <= 0) this.ringer.stop();
    };
    tick();
    this.timer = setInterval(tick, 250);
    this.ringer.start();
    accept.focus();
  }

  /** Remove the card (accepted, declined, expired or taken elsewhere). */
  close() {
    clearInterval(this.timer);
    this.ringer.stop();
    this.offer = null;
    this.layer.replaceChildren();
  }
}
