// The supervisor view: the live wallboard, active calls with a receive-only monitor, and pending
// authorisation requests to grant or refuse with a reason.
import { h, fill, clock } from "./dom.js";
import { t } from "./i18n.js";
import { renderWallboard } from "./wallboard.js";
import { VideoLink } from "./rtc.js";
import { QualityMeter } from "./quality.js";
import { IdCards } from "./id_cards.js";

const POLL_MS = 5000;

export class SupervisorScreen {
  constructor(root, { api, seatApi, services = {} }) {
    this.services = services;
    this.root = root;
    this.api = api;
    this.seatApi = seatApi;
    this.calls = [];
    this.auths = new Map();
    this.board = null;
    this.monitor = null;
    this.ws = null;
    this.stopped = false;
  }

  start() {
    this.boardEl = h("div", { testid: "wallboard", "aria-live": "off" }, t("app.loading"));
    this.callsEl = h("div", { testid: "active-calls" });
    this.authEl = h("div", { testid: "authorisations", "aria-live": "polite" });
    this.monitorEl = h("div", { testid: "monitor-slot" });
    this.error = h("p", { class: "form-error", testid: "supervisor-error", role: "alert" });
    fill(this.root, h("section", { class: "supervisor", "aria-labelledby": "sup-title" },
      h("h1", { id: "sup-title" }, t("sup.title")), this.error,
      h("div", { class: "card" }, this.boardEl),
      h("div", { class: "columns" },
        h("div", { class: "card" }, h("h2", {}, t("sup.calls")), this.callsEl, this.monitorEl),
        h("div", { class: "card" }, h("h2", {}, t("sup.auths")), this.authEl))));
    this.renderAuths();
    this.refresh();
    this.poll = setInterval(() => this.refresh(), POLL_MS);
    this.live();
  }

  async refresh() {
    try {
      this.show(await this.api.get("wallboard"));
      this.calls = (await this.seatApi.get("calls")).calls || [];
      this.showCalls();
      await this.refreshAuths();
      this.error.textContent = "";
    } catch (err) {
      this.error.textContent = t("error.generic", { message: err.message });
    }
  }

  /** `wallboard/ws` pushes boards as they change; polling stays as the fallback. */
  live() {
    if (this.stopped) return;
    let ws;
    try { ws = new WebSocket(this.api.wsUrl("wallboard/ws", { token: this.api.auth.token })); } catch { return; }
    this.ws = ws;
    ws.onmessage = (msg) => {
      try {
        const data = JSON.parse(msg.data);
        if (data.type === "error") return;
        this.show(data.board || data.wallboard || data);
      } catch { /* ignore a bad frame */ }
    };
    ws.onclose = () => { if (!this.stopped) this.liveTimer = setTimeout(() => this.live(), 3000); };
  }

  show(board) {
    this.board = board;
    renderWallboard(this.boardEl, board, this.services);
  }

  showCalls() {
    const calls = this.calls;
    if (!calls.length) { fill(this.callsEl, h("p", { class: "muted" }, t("sup.no_calls"))); return; }
    fill(this.callsEl, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["sup.teller", "sup.service", "sup.duration", "sup.monitor"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, calls.map((c) => {
        const id = c.id || c.session_id;
        const started = Number(c.started_at || c.connected_at || 0);
        return h("tr", { "data-session": id, testid: `call-row-${id}` },
          h("td", {}, c.teller_name || c.teller_id || "–"),
          h("td", {}, this.services[c.service] || c.service || "–"),
          h("td", {}, started ? clock(Date.now() / 1000 - started) : "–"),
          h("td", {}, h("button", { type: "button", testid: `monitor-${id}`, class: "monitor",
            onclick: () => this.startMonitor(id) }, t("sup.monitor"))));
      }))));
  }

  async startMonitor(sessionId) {
    this.stopMonitor();
    let reply;
    try {
      reply = await this.api.post(`sessions/${encodeURIComponent(sessionId)}/monitor`, {});
    } catch (err) {
      this.error.textContent = t("error.generic", { message: err.message });
      return;
    }
    const customer = h("video", { testid: "monitor-customer", autoplay: true, playsinline: true, "aria-label": t("call.customer") });
    const teller = h("video", { testid: "monitor-teller", autoplay: true, playsinline: true, "aria-label": t("sup.teller") });
    const streams = [new MediaStream(), new MediaStream()];
    customer.srcObject = streams[0];
    teller.srcObject = streams[1];
    const status = h("p", { testid: "monitor-status", role: "status" }, t("call.connecting"));
    const quality = h("p", { class: "quality", testid: "monitor-quality" });
    const stop = h("button", { type: "button", testid: "monitor-stop", onclick: () => this.stopMonitor() }, t("sup.stop_monitor"));
    const idCards = new IdCards(this.api, {
      onError: (message) => { this.error.textContent = t("call.id_card_failed", { message }); },
    });
    fill(this.monitorEl, h("div", { class: "monitor-view", testid: "monitor", "data-session": sessionId },
      h("h3", {}, t("sup.monitoring")), h("div", { class: "videos two" },
        // Captioned: two similar pictures side by side do not say who is who.
        h("figure", {}, customer, h("figcaption", { testid: "monitor-customer-label" }, t("call.customer"))),
        h("figure", {}, teller, h("figcaption", { testid: "monitor-teller-label" }, t("sup.teller")))), status, quality, idCards.el, stop));
    idCards.load(sessionId);
    const link = new VideoLink({
      video: reply.video, mode: "monitor",
      onTrack: (track, index) => {
        const stream = streams[index < 2 ? 0 : 1];
        stream.addTrack(track);
        (index < 2 ? customer : teller).play().catch(() => {});
      },
      onStatus: (st) => { status.dataset.state = st; status.textContent = t(st === "connected" ? "call.connected" : st === "closed" ? "call.ended" : "call.connecting"); },
      refresh: async () => (await this.api.post(`sessions/${encodeURIComponent(sessionId)}/monitor`, {})).video,
    });
    link.start();
    this.monitor = { link, meter: new QualityMeter(() => link.pc, quality, [customer, teller]), sessionId, idCards };
    stop.focus();
  }

  stopMonitor() {
    if (!this.monitor) return;
    this.monitor.meter.stop();
    this.monitor.link.close();
    this.monitor.idCards.destroy();
    this.monitor = null;
    this.monitorEl.replaceChildren();
  }

  /** The pending requests from the seat server (decided ones drop out; new ones are added). */
  async refreshAuths() {
    const pending = (await this.seatApi.get("authorisations")).authorisations || [];
    const ids = new Set(pending.map((a) => a.id));
    for (const id of [...this.auths.keys()]) if (!ids.has(id)) this.auths.delete(id);
    for (const a of pending) this.addAuth(a);
    this.renderAuths();
  }

  /** Add a pending request (once): its row is built once, so a reason being typed survives updates. */
  addAuth(a) {
    const id = a.id;
    if (!id || a.state === "granted" || a.state === "refused" || this.auths.has(id)) return;
    this.auths.set(id, this.authRow(id, a));
    this.renderAuths();
  }

  renderAuths() {
    if (!this.auths.size) { fill(this.authEl, h("p", { class: "muted" }, t("sup.no_auths"))); return; }
    let list = this.authEl.querySelector("ul.auths");
    if (!list) { list = h("ul", { class: "auths" }); fill(this.authEl, list); }
    for (const li of list.children) if (!this.auths.has(li.dataset.authorisation)) li.remove();
    for (const li of this.auths.values()) if (li.parentElement !== list) list.append(li);
  }

  authRow(id, a) {
    const reason = h("input", { id: `auth-reason-${id}`, testid: `auth-reason-${id}`, maxlength: "500" });
    const error = h("span", { class: "form-error", role: "alert" });
    const decide = async (grant) => {
      error.textContent = "";
      if (!reason.value.trim()) { error.textContent = t("sup.reason_needed"); reason.focus(); return; }
      try {
        await this.api.post(`authorisations/${encodeURIComponent(id)}`, { grant, reason: reason.value.trim() });
        this.auths.delete(id);
        this.renderAuths();
      } catch (err) {
        error.textContent = t("error.generic", { message: err.message });
      }
    };
    return h("li", { "data-authorisation": id, testid: `auth-${id}` },
      h("p", {}, h("strong", { class: "auth-teller" }, this.tellerName(a.teller_id)), ` (${a.service || ""}) — `, a.reason || ""),
      h("label", { class: "field inline", for: `auth-reason-${id}` }, h("span", {}, t("sup.reason")), reason),
      h("button", { type: "button", class: "primary", testid: `auth-grant-${id}`, onclick: () => decide(true) }, t("sup.grant")),
      h("button", { type: "button", testid: `auth-refuse-${id}`, onclick: () => decide(false) }, t("sup.refuse")),
      error);
  }

  tellerName(id) {
    const call = this.calls.find((c) => c.teller_id === id);
    return call ? call.teller_name : (id || "").slice(0, 8);
  }

  event(ev) {
    // The event's own `id` is its stream position, not the request's: fetch the list instead.
    if (ev.type === "authorisation.request") this.refreshAuths().catch(() => {});
    else if (ev.type === "id_card" && this.monitor && this.monitor.sessionId === ev.session_id) this.monitor.idCards.add(ev);
    else if (ev.type === "session.ended" && this.monitor && this.monitor.sessionId === ev.session_id) {
      this.stopMonitor();
      this.refresh();
    }
  }

  destroy() {
    this.stopped = true;
    clearInterval(this.poll);
    clearTimeout(this.liveTimer);
    if (this.ws) this.ws.close();
    this.stopMonitor();
  }
}
