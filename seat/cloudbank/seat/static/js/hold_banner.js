// The banner of a call on hold: across the top of the console, with how long the customer has
// been held and a Resume button, so a held customer is never forgotten behind another window.
// Driven by the session's own state (session.update events), not by which button was pressed.
import { h, clock } from "./dom.js";
import { t, onLanguageChange } from "./i18n.js";

export class HoldBanner {
  /** after: the element the banner goes after; onResume(): a promise (resume the call). */
  constructor(after, { onResume }) {
    this.onResume = onResume;
    // Not read out every second: the banner is announced once when it appears.
    this.timerEl = h("span", { class: "hold-timer", testid: "hold-timer", "aria-label": t("hold.timer"),
      "aria-live": "off" }, "0:00");
    this.error = h("span", { class: "form-error", testid: "hold-error", role: "alert" });
    this.resume = h("button", { type: "button", class: "primary", testid: "hold-resume",
      onclick: () => this.resumeClicked() }, t("hold.resume"));
    this.text = h("strong", { testid: "hold-text" }, t("hold.banner"));
    this.el = h("div", { class: "hold-banner", testid: "hold-banner", role: "status", hidden: true },
      this.text, " ", this.timerEl, this.resume, this.error);
    after.after(this.el);
    this.since = null;
    this.timer = null;
    // A language switch re-renders the call in place; the banner follows on its own.
    onLanguageChange(() => this.relabel());
  }

  relabel() {
    this.text.textContent = t("hold.banner");
    this.resume.textContent = t("hold.resume");
    this.timerEl.setAttribute("aria-label", t("hold.timer"));
  }

  /** A session state from the platform: on_hold shows the banner, anything else hides it. */
  follow(state) {
    if (state === "on_hold") this.show(); else this.hide();
  }

  show(since = Date.now() / 1000) {
    if (this.since === null) this.since = since;
    this.relabel();
    this.error.textContent = "";
    this.el.hidden = false;
    clearInterval(this.timer);
    const tick = () => { this.timerEl.textContent = clock(Date.now() / 1000 - this.since); };
    tick();
    this.timer = setInterval(tick, 500);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
    this.since = null;
    this.el.hidden = true;
  }

  get shown() {
    return !this.el.hidden;
  }

  async resumeClicked() {
    this.resume.disabled = true;
    this.error.textContent = "";
    try {
      await this.onResume();
    } catch (err) {
      this.error.textContent = t("error.generic", { message: err.message });
    } finally {
      this.resume.disabled = false;
    }
  }
}
