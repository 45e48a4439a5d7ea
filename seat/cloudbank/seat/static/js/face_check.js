// The ID check in the teller's call screen: pick one of the customer's ID-card images and one
// snapshot of their video, run the platform's face match (POST sessions/<id>/id_check), see both
// face crops side by side with the distance and a plain band, and record your own decision
// (accept / reject). The band is advice: nothing is approved until the teller decides.
// The widget keeps its state across re-renders (a language switch); render() rebuilds its element.
import { h, fill, select } from "./dom.js";
import { t } from "./i18n.js";

const BANDS = ["likely_same", "check_carefully", "different", "no_face"];

/** The file name a snapshot event's URL ends in (/video/snapshots/<session>/customer-0001.jpg). */
export function snapshotName(url) {
  const path = new URL(url, location.href).pathname;
  return path.slice(path.lastIndexOf("/") + 1);
}

export class FaceCheck {
  /** api: the Api; sessionId; onNote(key, params, kind): for the call log. */
  constructor(api, { sessionId, onNote = () => {} }) {
    this.api = api;
    this.sessionId = sessionId;
    this.onNote = onNote;
    this.cards = [];        // [{name, side}], oldest first
    this.shots = [];        // snapshot file names, oldest first
    this.check = null;      // the latest check, as the platform gave it
    this.crops = new Map(); // crop URL -> object URL
    this.busy = false;
    this.error = "";
    this.destroyed = false;
    this.el = h("section", { class: "card face-check", testid: "face-check", "aria-labelledby": "face-check-title" });
    this.render();
  }

  get base() { return `sessions/${encodeURIComponent(this.sessionId)}`; }

  /** The session's ID cards and checks so far (a reload, a re-render). */
  async load() {
    try {
      const [cards, checks] = await Promise.all([this.api.get(`${this.base}/id_card`), this.api.get(`${this.base}/id_check`)]);
      for (const card of cards.id_cards || []) this.addCard(card, false);
      const list = checks.id_checks || [];
      if (list.length) await this.show(list[list.length - 1]);
      this.render();
    } catch (err) {
      this.onNote("face.failed", { message: err.message }, "warn");
    }
  }

  addCard(card, rerender = true) {
    if (!card.name || this.cards.some((c) => c.name === card.name)) return;
    this.cards.push({ name: card.name, side: card.side || "front" });
    if (rerender) this.render();
  }

  addSnapshot(msg) {
    if (!msg.url) return;
    const name = snapshotName(msg.url);
    if (!name || this.shots.includes(name)) return;
    this.shots.push(name);
    this.render();
  }

  /** A check from the platform (a reply or an `id_check` event): fetch its crops, then show it. */
  async show(check) {
    if (!check || !check.id) return;
    if (this.check && this.check.id === check.id && this.check.decision && !check.decision) return;
    for (const which of ["id_card", "snapshot"]) {
      const url = check[which] && check[which].crop_url;
      if (!url || this.crops.has(url)) continue;
      this.crops.set(url, "");
      try {
        const blob = await this.api.blob(this.api.url(url.replace(/^\/api\//, "")));
        if (this.destroyed) return;
        this.crops.set(url, URL.createObjectURL(blob));
      } catch (err) {
        this.crops.delete(url);
        this.onNote("face.failed", { message: err.message }, "warn");
      }
    }
    this.check = check;
    this.render();
  }

  /** An `id_check` event for this session (another console of the same teller decided, say). */
  event(ev) {
    if (ev.id_check && (!this.check || ev.id_check.id === this.check.id || !this.check.decision)) this.show(ev.id_check);
  }

  async run() {
    if (this.busy || !this.cardSel || !this.shotSel) return;
    this.busy = true;
    this.error = "";
    this.render();
    try {
      const reply = await this.api.post(`${this.base}/id_check`, { id_card: this.cardSel.value, snapshot: this.shotSel.value });
      this.busy = false;
      await this.show(reply.id_check);
      this.onNote("face.done", { band: t(`face.band.${reply.id_check.band}`) });
    } catch (err) {
      this.busy = false;
      this.error = err.message;
      this.render();
    }
  }

  async decide(decision) {
    if (!this.check || this.busy) return;
    this.busy = true;
    this.error = "";
    this.render();
    try {
      const reply = await this.api.post(`${this.base}/id_check/${encodeURIComponent(this.check.id)}/decision`, { decision });
      this.busy = false;
      await this.show(reply.id_check);
      this.onNote(decision === "accept" ? "face.accepted" : "face.rejected");
    } catch (err) {
      this.busy = false;
      this.error = err.message;
      this.render();
    }
  }

  render() {
    if (this.destroyed) return;
    const cardSide = (c) => t("call.id_card", { side: t(c.side === "back" ? "call.id_card_back" : "call.id_card_front") });
    const cardPick = select("face-check-card", t("face.card"),
      this.cards.map((c, i) => [c.name, `${i + 1}. ${cardSide(c)}`]));
    const shotPick = select("face-check-snapshot", t("face.snapshot"),
      this.shots.map((name, i) => [name, t("face.snapshot_n", { n: i + 1 })]));
    this.cardSel = cardPick.input;
    this.shotSel = shotPick.input;
    if (this.cards.length) this.cardSel.value = this.cards[this.cards.length - 1].name;
    if (this.shots.length) this.shotSel.value = this.shots[this.shots.length - 1];
    const ready = this.cards.length > 0 && this.shots.length > 0;
    const runBtn = h("button", { type: "button", testid: "face-check-run", onclick: () => this.run(),
      disabled: !ready || this.busy }, t(this.busy && !this.check ? "face.running" : "face.run"));
    const hint = ready ? null : h("p", { class: "hint", testid: "face-check-hint" },
      t(this.cards.length ? "face.need_snapshot" : "face.need_card"));
    fill(this.el,
      h("h2", { id: "face-check-title" }, t("face.title")),
      h("div", { class: "face-check-picks" }, cardPick.field, shotPick.field), runBtn, hint,
      this.check ? this.result() : null,
      this.error ? h("p", { class: "error", role: "alert", testid: "face-check-error" }, this.error) : null);
  }

  result() {
    const c = this.check;
    const figure = (which, key) => {
      const url = c[which] && c[which].crop_url;
      const src = url && this.crops.get(url);
      return h("figure", { testid: `face-crop-${which}`, "data-sha256": (c[which] && c[which].sha256) || "" },
        src ? h("img", { src, alt: t(key), width: "120", height: "120" })
          : h("div", { class: "no-face", role: "img", "aria-label": t("face.no_face_on", { what: t(key) }) }, t("face.band.no_face")),
        h("figcaption", {}, t(key)));
    };
    const band = BANDS.includes(c.band) ? c.band : "no_face";
    const distance = typeof c.distance === "number" ? c.distance.toFixed(2) : "–";
    const decided = c.decision;
    return h("div", { class: "face-result", testid: "face-check-result", "data-band": band, "data-check": c.id },
      h("div", { class: "face-crops" }, figure("id_card", "face.on_card"), figure("snapshot", "face.on_video")),
      h("p", { class: `face-band band-${band}`, testid: "face-check-band", role: "status" }, t(`face.band.${band}`)),
      h("p", { class: "face-distance", testid: "face-check-distance" }, t("face.distance", { distance }),
        " ", h("span", { class: "hint" }, t("face.distance_hint"))),
      h("p", { class: "hint" }, t("face.advice")),
      decided
        ? h("p", { testid: "face-check-decision", "data-decision": decided.decision },
          t(decided.decision === "accept" ? "face.decided_accept" : "face.decided_reject"))
        : h("div", { class: "face-decide", role: "group", "aria-label": t("face.your_decision") },
          h("button", { type: "button", testid: "face-check-accept", disabled: this.busy, onclick: () => this.decide("accept") },
            t("face.accept")),
          h("button", { type: "button", class: "danger", testid: "face-check-reject", disabled: this.busy,
            onclick: () => this.decide("reject") }, t("face.reject"))));
  }

  destroy() {
    this.destroyed = true;
    for (const src of this.crops.values()) if (src) URL.revokeObjectURL(src);
  }
}
