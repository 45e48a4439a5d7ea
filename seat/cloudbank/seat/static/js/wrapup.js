// Wrap-up after a call: a required disposition code, notes and the service actually done. The
// platform returns the teller to ready after the queue's wrap-up time unless not-ready is chosen.
// The form says who ended the call, counts the wrap-up time down, and once the platform has made
// the teller ready again says so (the state comes from the console's TellerState, like the badge).
import { h, fill } from "./dom.js";
import { t, label } from "./i18n.js";
import { ApiError } from "./api.js";

export const DISPOSITIONS = ["resolved", "follow_up", "referred", "customer_left", "not_eligible", "technical"];
/** What a wrap-up saved without a chosen outcome records (a next call was accepted first). */
export const NO_OUTCOME = "no_outcome";
/** Put ahead of the notes of a wrap-up saved that way, so the record says how it was closed. */
export const AUTO_SAVED_NOTE = "[saved when the next call was accepted]";

export class WrapupScreen {
  /**
   * services: [[code, name]]; onDone(reply, notReady) after the platform accepted it;
   * store: the TellerState; syncState(): ask the platform for the state (time ran out, no event yet).
   */
  constructor(root, call, { api, services, wrapupSeconds, onDone, store = null, syncState = () => {} }) {
    this.root = root;
    this.call = call;
    this.api = api;
    this.services = services;
    this.wrapupSeconds = wrapupSeconds;
    this.onDone = onDone;
    this.timer = null;
    this.store = store;
    this.syncState = syncState;
    this.synced = 0;
    this.unsubscribe = store ? store.subscribe(() => this.tick && this.tick()) : () => {};
  }

  /** Who ended the call (`session.ended`'s `by`): the customer's hang-up, or the platform's end of a
   * call whose media never came up, is said in words. */
  endedBy(by) {
    this.call.ended_by = by || null;
    if (!this.endedEl) return;
    const text = by === "customer" ? t("wrapup.customer_ended") : by === "platform" ? t("wrapup.no_media") : "";
    this.endedEl.textContent = text;
    this.endedEl.hidden = !text;
  }

  render() {
    const s = this.call.session;
    const code = h("select", { id: "wrapup-code", testid: "wrapup-code", required: true, "aria-required": "true" },
      h("option", { value: "" }, t("wrapup.choose")),
      DISPOSITIONS.map((d) => h("option", { value: d }, label("disposition", d))));
    const notes = h("textarea", { id: "wrapup-notes", testid: "wrapup-notes", rows: "4", maxlength: "4000" });
    const service = h("select", { id: "wrapup-service", testid: "wrapup-service" },
      this.services.map(([c, name]) => h("option", { value: c, selected: c === s.service }, name)),
      h("option", { value: "" }, t("wrapup.none")));
    if (!this.services.some(([c]) => c === s.service) && s.service) {
      service.prepend(h("option", { value: s.service, selected: true }, s.service));
    }
    const notReady = h("input", { type: "checkbox", id: "wrapup-not-ready", testid: "wrapup-not-ready" });
    const error = h("p", { class: "form-error", testid: "wrapup-error", role: "alert" });
    const left = h("p", { class: "muted", testid: "wrapup-time-left", "aria-live": "off" });
    // Read out once when it appears: the teller may be looking at the customer's window.
    this.endedEl = h("p", { class: "ended-by", testid: "wrapup-ended-by", role: "status", hidden: true });
    const submit = h("button", { type: "submit", class: "primary big", testid: "wrapup-submit" }, t("wrapup.submit"));
    const form = h("form", { class: "card wrapup", testid: "wrapup", novalidate: true, "aria-labelledby": "wrapup-title" },
      h("h1", { id: "wrapup-title" }, t("wrapup.title")), this.endedEl, left,
      h("label", { class: "field", for: "wrapup-code" }, h("span", {}, t("wrapup.code"), " *"), code),
      h("label", { class: "field", for: "wrapup-service" }, h("span", {}, t("wrapup.service")), service),
      h("label", { class: "field", for: "wrapup-notes" }, h("span", {}, t("wrapup.notes")), notes),
      h("label", { class: "check", for: "wrapup-not-ready" }, notReady, " ", t("wrapup.not_ready")),
      error, submit);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      if (!code.value) {
        error.textContent = t("wrapup.required");
        code.setAttribute("aria-invalid", "true");
        code.focus();
        return;
      }
      submit.disabled = true;
      try {
        // The platform records whether a service was done; which one, when it differs from the
        // queue's, goes at the head of the notes.
        const other = service.value && service.value !== s.service ? `[service: ${service.value}] ` : "";
        const reply = await this.api.post(`sessions/${encodeURIComponent(s.id)}/wrapup`, {
          disposition: code.value, notes: (other + notes.value.trim()).slice(0, 4000),
          service_done: service.value !== "", not_ready: notReady.checked,
        });
        this.destroy();
        await this.onDone(reply, notReady.checked);
      } catch (err) {
        error.textContent = t("error.generic", { message: err.message });
      } finally {
        submit.disabled = false;
      }
    });
    fill(this.root, h("div", { class: "center" }, form));
    this.fields = { code, notes, service, notReady };
    this.endedBy(this.call.ended_by);
    this.until = (this.call.ended_at || Date.now() / 1000) + this.wrapupSeconds;
    this.tick = () => {
      const state = this.store ? this.store.state : "wrap_up";
      const seconds = Math.max(0, Math.ceil(this.until - Date.now() / 1000));
      if (state && state !== "wrap_up") {
        // The platform ended the wrap-up time: the teller is in that state now, and the form
        // stays only to record this call's outcome.
        left.dataset.over = "true";
        left.textContent = t("wrapup.time_over", { state: label("state", state) });
        return;
      }
      left.dataset.over = "false";
      if (seconds > 0) {
        left.textContent = t("wrapup.time_left", { seconds });
        return;
      }
      left.textContent = t("wrapup.time_ending");
      // The teller.state event should be here by now; ask, at most every 2 s, if it is not.
      if (Date.now() - this.synced > 2000) { this.synced = Date.now(); this.syncState(); }
    };
    this.tick();
    this.timer = setInterval(this.tick, 500);
    code.focus();
  }

  /** The form in another language, keeping what the teller has entered and where they were. */
  relabel() {
    const { code, notes, service, notReady } = this.fields;
    const kept = { code: code.value, notes: notes.value, service: service.value, notReady: notReady.checked };
    const focused = document.activeElement && document.activeElement.id;
    clearInterval(this.timer);
    this.render();
    Object.assign(this.fields.code, { value: kept.code });
    Object.assign(this.fields.notes, { value: kept.notes });
    Object.assign(this.fields.service, { value: kept.service });
    this.fields.notReady.checked = kept.notReady;
    const again = focused && document.getElementById(focused);
    if (again) again.focus();
  }

  /**
   * A new call is being accepted while this form is still open: the bank keeps a record of every
   * call, so the form is saved as it stands instead of being dropped: the chosen outcome (else
   * "no outcome recorded"), the notes marked as saved that way; the platform audits it like any
   * wrap-up. Returns the disposition saved; throws when the platform refused (the form stays).
   */
  async saveBeforeNextCall() {
    const { code, notes, service } = this.fields;
    const s = this.call.session;
    const chosen = code.value;
    const other = chosen && service.value && service.value !== s.service ? `[service: ${service.value}] ` : "";
    const text = `${AUTO_SAVED_NOTE} ${other}${notes.value.trim()}`.trim().slice(0, 4000);
    try {
      await this.api.post(`sessions/${encodeURIComponent(s.id)}/wrapup`, {
        disposition: chosen || NO_OUTCOME, notes: text, service_done: Boolean(chosen) && service.value !== "",
        not_ready: false,
      });
    } catch (err) {
      // Closed already (wrapped up from another window): nothing is lost.
      const closed = err instanceof ApiError && err.status === 409 && err.body.state === "closed";
      if (!closed) throw err;
    }
    this.destroy();
    return chosen || NO_OUTCOME;
  }

  /** The queue's own wrap-up end (epoch seconds), from the platform's view of the teller. */
  setUntil(epoch) {
    if (epoch) this.until = epoch;
  }

  destroy() {
    clearInterval(this.timer);
    this.unsubscribe();
  }
}
