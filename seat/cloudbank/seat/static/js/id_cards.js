// The customer's ID card(s) in a call, for the teller's call screen and the supervisor's monitor:
// each `id_card` event (or the session's list, after a reload or for a late monitor) is fetched
// with the signed-in person's token and shown as a picture; blob URLs are revoked on destroy.
import { h } from "./dom.js";
import { t } from "./i18n.js";

export class IdCards {
  /** api: the Api; onShown(side) / onError(message): for the screen's log. */
  constructor(api, { onShown = () => {}, onError = () => {} } = {}) {
    this.api = api;
    this.onShown = onShown;
    this.onError = onError;
    this.cards = new Map();   // stored name -> object URL ("" while it loads)
    this.destroyed = false;
    this.el = h("div", { class: "shots id-cards", testid: "id-cards" });
  }

  /** Show every card the session has so far (events sent before this screen opened are not replayed). */
  async load(sessionId) {
    try {
      const reply = await this.api.get(`sessions/${encodeURIComponent(sessionId)}/id_card`);
      for (const card of reply.id_cards || []) await this.add(card, { quiet: true });
    } catch (err) {
      this.onError(err.message);
    }
  }

  /** One card ({name, side, sha256, url}); a card already shown is skipped. */
  async add(card, { quiet = false } = {}) {
    if (!card.url || !card.name || this.cards.has(card.name) || this.destroyed) return;
    this.cards.set(card.name, "");
    const side = t(card.side === "back" ? "call.id_card_back" : "call.id_card_front");
    try {
      // The event names the platform's path (/api/...): resolve it against where this console's API lives.
      const url = card.url.startsWith("/api/") ? this.api.url(card.url.slice(5)) : card.url;
      const src = URL.createObjectURL(await this.api.blob(url));
      if (this.destroyed) { URL.revokeObjectURL(src); return; }
      this.cards.set(card.name, src);
      this.el.prepend(h("figure", { testid: "id-card", "data-sha256": card.sha256 || "", "data-side": card.side || "" },
        h("img", { src, alt: t("call.id_card", { side }), width: "240" }),
        h("figcaption", {}, t("call.id_card", { side }))));
      if (!quiet) this.onShown(side);
    } catch (err) {
      this.cards.delete(card.name);
      this.onError(err.message);
    }
  }

  destroy() {
    this.destroyed = true;
    for (const src of this.cards.values()) if (src) URL.revokeObjectURL(src);
  }
}
