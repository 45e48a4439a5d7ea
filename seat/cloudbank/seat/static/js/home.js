// The teller's home: own state with a big ready / not-ready switch (with a reason), today's
// counts, and the queues the teller serves with how many wait and for how long.
import { h, fill, clock } from "./dom.js";
import { t, label } from "./i18n.js";

export const NOT_READY_REASONS = ["break", "lunch", "meeting", "training", "admin"];

/** The parts of `GET /api/teller` the screen uses, whatever optional fields are missing. */
export function normaliseTeller(data) {
  // `GET /api/teller` answers {teller: {...}, queues}; the `teller.state` event carries {teller}.
  const d = data || {};
  const st = d.teller || d;
  return {
    state: String(st.state || "offline"),
    reason: st.reason || null,
    since: Number(st.since || st.state_since || 0) || null,
    wrapupUntil: Number(st.wrapup_until || st.until || 0) || null,
    counts: st.today || d.counts || {},
    queues: Array.isArray(d.queues) ? d.queues : [],
    session: d.session || null,
    raw: d,
  };
}

export class HomeScreen {
  /**
   * onState(state, reason) asks the platform to change state; onResume() returns to the call;
   * store: the console's TellerState, the one place the state shown here comes from.
   */
  constructor(root, { onState, onResume, names = {}, store = null }) {
    this.root = root;
    this.names = names;   // service code -> name
    this.onState = onState;
    this.onResume = onResume;
    this.data = normaliseTeller({});
    this.timer = null;
    this.error = h("p", { class: "form-error", testid: "state-error", role: "alert" });
    this.store = store;
    // An offer ringing, a wrap-up ending: the state line follows the store the top bar follows.
    this.unsubscribe = store ? store.subscribe(() => this.render()) : () => {};
  }

  /** State, reason, since and wrap-up end: from the store when there is one, else the last answer. */
  current() {
    const d = this.data;
    if (!this.store || !this.store.state) return d;
    const v = this.store.value;
    return { ...d, state: v.state, reason: v.reason, since: v.since, wrapupUntil: v.wrapupUntil };
  }

  render(data) {
    if (data) this.data = normaliseTeller(data);
    const d = this.current();
    const stateLabel = label("state", d.state);
    const reasonSel = h("select", { id: "not-ready-reason", testid: "not-ready-reason" },
      NOT_READY_REASONS.map((r) => h("option", { value: r, selected: d.reason === r }, label("reason", r))));
    const ready = h("button", { type: "button", class: "switch ready", testid: "state-ready",
      "aria-pressed": String(d.state === "ready"), disabled: ["offered", "busy"].includes(d.state) },
    t("home.go_ready"));
    const notReady = h("button", { type: "button", class: "switch not-ready", testid: "state-not-ready",
      "aria-pressed": String(d.state === "not_ready"), disabled: ["offered", "busy"].includes(d.state) },
    t("home.go_not_ready"));
    ready.addEventListener("click", () => this.change("ready", null, ready));
    notReady.addEventListener("click", () => this.change("not_ready", reasonSel.value, notReady));

    const since = h("span", { testid: "state-since", class: "muted" });
    const wrapLeft = h("p", { testid: "wrapup-countdown", class: "muted", "aria-live": "off" });
    const resume = d.session
      ? h("button", { type: "button", class: "primary", testid: "resume-call", onclick: () => this.onResume(d.session) },
        t("home.resume_call"))
      : null;

    const counts = Object.entries(d.counts).filter(([, v]) => typeof v === "number");
    const countList = h("dl", { class: "counts", testid: "today-counts" },
      counts.map(([k, v]) => [
        h("dt", {}, label("home.count", k)),
        h("dd", { "data-count": k }, k.endsWith("_s") ? clock(v) : String(v)),
      ]));

    const queues = d.queues.length
      ? h("table", { class: "grid", testid: "my-queues" },
        h("caption", {}, t("home.queues")),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("home.queue")),
          h("th", { scope: "col" }, t("home.waiting")), h("th", { scope: "col" }, t("home.longest")))),
        h("tbody", {}, d.queues.map((q) => {
          const code = q.code || q.queue || q.id || q.service;
          return h("tr", { "data-queue": code },
            h("th", { scope: "row" }, this.names[code] || q.name || code),
            h("td", { "data-field": "waiting" }, String(q.waiting ?? 0)),
            h("td", { "data-field": "longest" }, clock(q.longest_wait_s ?? q.longest_wait ?? 0)));
        })))
      : h("p", { testid: "my-queues", class: "muted" }, t("home.no_queues"));

    fill(this.root, h("section", { class: "home", "aria-labelledby": "home-title" },
      h("h1", { id: "home-title" }, t("home.title")),
      h("div", { class: "card state-card", testid: "state-card" },
        h("p", { class: `state-now state-${d.state}`, testid: "state-now", "data-state": d.state },
          t("home.state_now", { state: stateLabel }),
          d.state === "not_ready" && d.reason ? ` — ${label("reason", d.reason)}` : "", " ", since),
        wrapLeft,
        resume,
        h("div", { class: "switches" }, ready,
          h("div", { class: "not-ready-group" }, notReady,
            h("label", { class: "field inline", for: "not-ready-reason" }, h("span", {}, t("home.reason")), reasonSel))),
        this.error),
      h("div", { class: "columns" },
        h("div", { class: "card" }, h("h2", {}, t("home.counts")), countList),
        h("div", { class: "card" }, queues))));

    clearInterval(this.timer);
    const tick = () => {
      if (d.since) since.textContent = t("home.since", { time: clock(Date.now() / 1000 - d.since) });
      if (d.wrapupUntil && ["wrapup", "wrap_up"].includes(d.state)) {
        wrapLeft.textContent = t("home.back_to_ready", { seconds: Math.max(0, Math.ceil(d.wrapupUntil - Date.now() / 1000)) });
      }
    };
    tick();
    this.timer = setInterval(tick, 1000);
  }

  async change(state, reason, button) {
    this.error.textContent = "";
    button.disabled = true;
    try {
      await this.onState(state, reason);
    } catch (err) {
      this.error.textContent = t("error.generic", { message: err.message });
    } finally {
      button.disabled = false;
    }
  }

  destroy() {
    clearInterval(this.timer);
    this.unsubscribe();
  }
}
