// The supervisor view: the tellers on the floor (state, time in state, their call), the monitor
// (receive-only, with the call's live transcript) at the top where it is seen without scrolling,
// pending authorisation requests (service, who asked, when) to grant or refuse with a reason,
// the calls in progress and the wallboard. Everything comes from the platform API.
import { h, fill, clock } from "./dom.js";
import { t, language } from "./i18n.js";
import { labelColumns } from "./table_labels.js";
import { renderWallboard } from "./wallboard.js";
import { VideoLink } from "./rtc.js";
import { TalkControl } from "./talk_control.js";
import { QualityMeter } from "./quality.js";
import { IdCards } from "./id_cards.js";
import { Transcript } from "./transcript.js";
import { TellerList } from "./teller_list.js";

const POLL_MS = 5000;

export class SupervisorScreen {
  constructor(root, { api, services = {} }) {
    this.services = services;
    this.root = root;
    this.api = api;
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
    this.monitorEl = h("div", { testid: "monitor-slot", class: "monitor-slot" });
    this.error = h("p", { class: "form-error", testid: "supervisor-error", role: "alert" });
    this.tellers = new TellerList({ services: this.services, onMonitor: (sid) => this.startMonitor(sid) });
    // The monitor first: started from a teller's row, it opens where the supervisor is looking.
    fill(this.root, h("section", { class: "supervisor", "aria-labelledby": "sup-title" },
      h("h1", { id: "sup-title" }, t("sup.title")), this.error, this.monitorEl,
      h("div", { class: "columns sup-top" },
        h("div", { class: "card" }, h("h2", {}, t("sup.tellers_title")), this.tellers.el),
        h("div", { class: "card" }, h("h2", {}, t("sup.auths")), this.authEl)),
      h("div", { class: "card" }, h("h2", {}, t("sup.calls")), this.callsEl),
      h("div", { class: "card" }, this.boardEl)));
    this.renderAuths();
    this.refresh();
    this.poll = setInterval(() => this.refresh(), POLL_MS);
    this.live();
  }

  async refresh() {
    try {
      this.show(await this.api.get("wallboard"));
      this.calls = (await this.api.get("calls")).calls || [];
      this.showCalls();
      this.tellers.update(await this.api.get("tellers"));
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
    // The wallboard feed carries every teller's state every 2 s: the list follows it between polls.
    if (board && Array.isArray(board.tellers)) this.tellers.states(board.tellers);
  }

  showCalls() {
    const calls = this.calls;
    if (!calls.length) { fill(this.callsEl, h("p", { class: "muted" }, t("sup.no_calls"))); return; }
    fill(this.callsEl, labelColumns(h("table", { class: "grid stack" },
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
      })))));
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
    const talkSlot = h("span", { class: "talk-slot" });
    const idCards = new IdCards(this.api, {
      onError: (message) => { this.error.textContent = t("call.id_card_failed", { message }); },
    });
    // The call's live transcript beside the pictures (the supervisor is in the call's audience now).
    const transcript = new Transcript();
    const call = this.calls.find((c) => (c.id || c.session_id) === sessionId) || {};
    const who = [call.teller_name, this.services[call.service] || call.service].filter(Boolean).join(" · ");
    fill(this.monitorEl, h("div", { class: "card monitor-view", testid: "monitor", "data-session": sessionId,
      "aria-labelledby": "monitor-title" },
    h("div", { class: "monitor-head" },
      h("h2", { id: "monitor-title" }, t("sup.monitoring"), who ? ` — ${who}` : ""), talkSlot, stop),
    h("div", { class: "monitor-body" },
      h("div", { class: "videos two" },
        // Captioned: two similar pictures side by side do not say who is who.
        h("figure", {}, customer, h("figcaption", { testid: "monitor-customer-label" }, t("call.customer"))),
        h("figure", {}, teller, h("figcaption", { testid: "monitor-teller-label" }, t("sup.teller")))),
      h("div", { class: "monitor-transcript", testid: "monitor-transcript" }, transcript.el)),
    h("div", { class: "monitor-foot" }, status, quality), idCards.el));
    idCards.load(sessionId);
    const link = new VideoLink({
      video: reply.video, mode: "monitor",
      onTrack: (track, index) => {
        const stream = streams[index < 2 ? 0 : 1];
        stream.addTrack(track);
        (index < 2 ? customer : teller).play().catch(() => {});
      },
      onMessage: (msg) => {
        if (msg.type === "error" && msg.code === "not_allowed" && this.monitor) this.monitor.talk.refused(msg.message);
        if (msg.type === "answer" && this.monitor) this.monitor.talk.resend();
      },
      onStatus: (st) => { status.dataset.state = st; status.textContent = t(st === "connected" ? "call.connected" : st === "closed" ? "call.ended" : "call.connecting"); },
      refresh: async () => (await this.api.post(`sessions/${encodeURIComponent(sessionId)}/monitor`, {})).video,
    });
    const talk = new TalkControl(this.api, sessionId, link, {
      onError: (message) => { this.error.textContent = t("error.generic", { message }); },
    });
    talkSlot.append(talk.el);
    link.start();
    // Live lines wait in `backlog` until the call's history is in, so the transcript stays in order.
    this.monitor = { link, meter: new QualityMeter(() => link.pc, quality, [customer, teller]), sessionId, idCards,
      transcript, backlog: [], talk };
    this.loadHistory(this.monitor);
    this.monitorEl.scrollIntoView({ block: "nearest" });
    stop.focus({ preventScroll: true });
  }

  /** What was said before monitoring began (the platform keeps what the call's audience was sent). */
  async loadHistory(m) {
    try {
      const hist = await this.api.get(`sessions/${encodeURIComponent(m.sessionId)}/history`);
      if (this.monitor !== m) return;
      for (const ev of hist.transcript || []) m.transcript.line(ev);
      for (const ev of hist.keywords || []) m.transcript.keyword(ev);
    } catch (err) {
      if (this.monitor === m) this.error.textContent = t("call.history_failed", { message: err.message });
    } finally {
      const live = m.backlog || [];
      m.backlog = null;
      if (this.monitor === m) for (const ev of live) this.monitorEvent(ev);
    }
  }

  /** A transcript line or keyword hit of the monitored call. */
  monitorEvent(ev) {
    const m = this.monitor;
    if (m.backlog) { m.backlog.push(ev); return; }
    if (ev.type === "transcript") m.transcript.line(ev);
    else m.transcript.keyword(ev);
  }

  stopMonitor() {
    if (!this.monitor) return;
    this.monitor.meter.stop();
    this.monitor.talk.destroy();
    this.monitor.link.close();
    this.monitor.idCards.destroy();
    this.monitor = null;
    this.monitorEl.replaceChildren();
  }

  /** The pending requests from the platform (decided ones drop out; new ones are added). */
  async refreshAuths() {
    const pending = (await this.api.get("authorisations/pending")).authorisations || [];
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
    const at = Number(a.at) || 0;
    const asked = at ? new Date(at * 1000) : null;
    return h("li", { "data-authorisation": id, testid: `auth-${id}` },
      h("p", { class: "auth-what" },
        h("strong", { class: "auth-teller", testid: `auth-teller-${id}` }, a.teller_name || this.tellerName(a.teller_id)),
        " · ", h("span", { class: "auth-service", testid: `auth-service-${id}` }, this.serviceName(a)),
        " · ", h("time", { testid: `auth-time-${id}`, datetime: asked ? asked.toISOString() : "" },
          asked ? t("sup.asked_at", { time: asked.toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB") }) : "")),
      h("p", { class: "auth-reason", testid: `auth-text-${id}` }, a.reason || ""),
      a.values ? this.authValues(id, a) : null,
      h("label", { class: "field inline", for: `auth-reason-${id}` }, h("span", {}, t("sup.reason")), reason),
      h("button", { type: "button", class: "primary", testid: `auth-grant-${id}`, onclick: () => decide(true) }, t("sup.grant")),
      h("button", { type: "button", testid: `auth-refuse-${id}`, onclick: () => decide(false) }, t("sup.refuse")),
      error);
  }

  /** A work order's request: the values it asks for, by the definition's labels (fetched; names until then). */
  authValues(id, a) {
    const dl = h("dl", { class: "auth-values", testid: `auth-values-${id}`, "aria-label": t("sup.wo_values") });
    const show = (fields) => {
      const labels = new Map((fields || []).map((f) => [f.name, f]));
      // In the form's order, as the teller and the customer saw it.
      const names = [...labels.keys()].filter((n) => n in a.values);
      for (const n of Object.keys(a.values)) if (!names.includes(n)) names.push(n);
      fill(dl, names.flatMap((name) => {
        const value = a.values[name];
        const f = labels.get(name);
        const text = f && f.kind === "checkbox" ? t(value === "true" ? "pushes.yes" : "pushes.no") : String(value);
        return [h("dt", {}, f ? f.label : name), h("dd", { "data-field": name }, text)];
      }));
    };
    show([]);
    if (a.work_order_id) {
      this.api.get(`work_orders/${encodeURIComponent(a.work_order_id)}`)
        .then((r) => show(((r.work_order || {}).definition || {}).fields))
        .catch(() => { /* the names stand */ });
    }
    return dl;
  }

  /** The service's name in the UI's language (the platform sends the catalogue's names). */
  serviceName(a) {
    const names = a.service_names || {};
    return names[language()] || a.service_name || this.services[a.service] || a.service || "";
  }

  tellerName(id) {
    const call = this.calls.find((c) => c.teller_id === id);
    return call ? call.teller_name : (id || "").slice(0, 8);
  }

  event(ev) {
    // The event's own `id` is its stream position, not the request's: fetch the list instead.
    if (ev.type === "authorisation.request") this.refreshAuths().catch(() => {});
    else if (ev.type === "id_card" && this.monitor && this.monitor.sessionId === ev.session_id) this.monitor.idCards.add(ev);
    else if ((ev.type === "transcript" || ev.type === "keyword") && this.monitor
             && this.monitor.sessionId === ev.session_id) this.monitorEvent(ev);
    else if (ev.type === "session.ended" && this.monitor && this.monitor.sessionId === ev.session_id) {
      this.stopMonitor();
      this.refresh();
    }
  }

  destroy() {
    this.stopped = true;
    clearInterval(this.poll);
    this.tellers.destroy();
    clearTimeout(this.liveTimer);
    if (this.ws) this.ws.close();
    this.stopMonitor();
  }
}
