// The supervisor's list of tellers: one row per teller on their floor with the state, how long
// they have been in it (counting on the screen), the call they are in and a Monitor button.
// Names and calls come from `GET /api/tellers`; states also from every wallboard push.
import { h, fill, clock } from "./dom.js";
import { t, label } from "./i18n.js";
import { labelColumns } from "./table_labels.js";

export class TellerList {
  /** services: code -> name; onMonitor(sessionId) starts monitoring that call. */
  constructor({ services = {}, onMonitor }) {
    this.services = services;
    this.onMonitor = onMonitor;
    this.tellers = [];
    this.el = h("div", { testid: "teller-list" }, t("app.loading"));
    this.timer = setInterval(() => this.tick(), 1000);
  }

  /** A `GET tellers` answer: the rows are rebuilt (names, calls, states). */
  update(body) {
    this.tellers = (body && body.tellers) || [];
    this.render();
  }

  /** Teller views from the wallboard (`{id, state, since, reason}`): only states change. */
  states(views) {
    let changed = false;
    for (const v of views) {
      const row = this.tellers.find((x) => x.id === v.id);
      if (!row) continue;
      if (row.state !== v.state || row.since !== v.since || (row.reason || null) !== (v.reason || null)) {
        Object.assign(row, { state: v.state, since: v.since, reason: v.reason || null });
        // A teller whose call ended is no longer in it, whatever the last poll said.
        if (!["busy", "wrap_up"].includes(v.state)) row.call = null;
        changed = true;
      }
    }
    if (changed) this.render();
  }

  render() {
    if (!this.tellers.length) { fill(this.el, h("p", { class: "muted" }, t("sup.no_tellers"))); return; }
    fill(this.el, labelColumns(h("table", { class: "grid tellers stack" },
      h("thead", {}, h("tr", {}, ["sup.teller", "sup.state", "sup.in_state", "sup.call", "sup.monitor"]
        .map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, this.tellers.map((x) => this.row(x))))));
    this.tick();
  }

  row(x) {
    const state = h("span", { class: `pill state-${x.state}`, testid: `teller-state-${x.id}`, "data-state": x.state },
      label("state", x.state), x.state === "not_ready" && x.reason ? ` (${label("reason", x.reason)})` : "");
    const since = h("td", { "data-field": "since", testid: `teller-since-${x.id}`, "data-since": x.since || "" }, "–");
    const call = x.call;
    const monitor = call
      ? h("button", { type: "button", class: "monitor", testid: `teller-monitor-${call.id}`,
        "aria-label": t("sup.monitor_teller", { name: x.name }), onclick: () => this.onMonitor(call.id) }, t("sup.monitor"))
      : "";
    return h("tr", { testid: `teller-row-${x.id}`, "data-teller": x.id, "data-state": x.state },
      h("th", { scope: "row" }, x.name || x.username || x.id),
      h("td", { "data-field": "state" }, state),
      since,
      h("td", { "data-field": "call" }, call
        ? `${this.services[call.service] || call.service} · ${label("session", call.state)}` : "–"),
      h("td", {}, monitor));
  }

  /** Time in state, counted on from `since` every second between updates. */
  tick() {
    for (const td of this.el.querySelectorAll("[data-field=since]")) {
      const since = Number(td.dataset.since);
      td.textContent = since ? clock(Math.max(0, Date.now() / 1000 - since)) : "–";
    }
  }

  destroy() {
    clearInterval(this.timer);
  }
}
