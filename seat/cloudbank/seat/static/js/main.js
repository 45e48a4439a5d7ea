// The seat console's controller: signs the person in, keeps the event socket, and moves between
// the screens (login, teller home, offer, call, wrap-up, supervisor). A reload returns to where
// the person was: the token, the current call and the last event id live in sessionStorage.
import { Api, ApiError, revokeToken } from "./api.js";
import { Auth } from "./auth.js";
import { EventStream } from "./events.js";
import { h, fill } from "./dom.js";
import { t, label, language, setLanguage } from "./i18n.js";
import { renderLogin } from "./login.js";
import { HomeScreen, normaliseTeller } from "./home.js";
import { OfferCard } from "./offer.js";
import { Ringer } from "./ring.js";
import { CallScreen } from "./call.js";
import { WrapupScreen } from "./wrapup.js";
import { SupervisorScreen } from "./supervisor.js";
import { TellerState } from "./teller_state.js";
import { HoldBanner } from "./hold_banner.js";

const HOME_REFRESH_MS = 3000;
const CALL_HASH = /^#\/call\/([A-Za-z0-9_.:-]{1,80})$/;

class SeatApp {
  constructor(config) {
    this.config = config;
    this.auth = new Auth();
    this.api = new Api(config.api || "/api/", this.auth, () => this.expired());
    // The seat server's own read-only lookups (live calls, branch names), relative to /seat/.
    this.seatApi = new Api("api/", this.auth, () => this.expired());
    this.branches = {};
    this.root = document.getElementById("screen");
    this.noticeEl = document.getElementById("notice");
    this.ringer = new Ringer();
    // The one source of the teller's state on screen: the badge, home and wrap-up follow it.
    this.tellerState = new TellerState();
    this.tellerState.subscribe((v) => this.renderBadge(v.state));
    this.renderBadge(null);
    this.holdBanner = new HoldBanner(this.noticeEl, {
      onResume: () => this.resumeFromHold(),
    });
    this.screen = null;
    this.events = null;
    this.services = [];
    this.offer = new OfferCard(document.getElementById("offer-layer"), this.ringer, {
      onAccept: (o) => this.accept(o), onDecline: (o) => this.decline(o),
    });
  }

  async init() {
    const lang = document.getElementById("lang");
    lang.value = language();
    document.documentElement.lang = language() === "zh" ? "zh-CN" : "en";
    // A new language re-renders the screen in place: a call keeps its media, log and history.
    lang.addEventListener("change", () => this.switchLanguage(lang.value));
    const logout = document.getElementById("logout");
    logout.addEventListener("click", () => this.logout());
    document.addEventListener("click", () => this.ringer.unlock(), { capture: true });
    this.topbar();
    if (!this.auth.token) { this.showLogin(); return; }
    if (this.auth.remaining <= 0) { this.expired(); return; }
    try {
      await this.api.get("me");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;  // expired() already ran
      this.notice(t("error.network"), "warn");
    }
    await this.start();
  }

  topbar() {
    document.getElementById("lang-label").textContent = t("lang.label");
    const logout = document.getElementById("logout");
    logout.textContent = t("logout");
    logout.hidden = !this.auth.token;
    const user = this.auth.user;
    document.getElementById("who").textContent = user ? `${user.display_name || user.username} · ${label("role", user.role)}` : "";
    document.title = t("app.title");
  }

  /** Another language without a reload: the top bar, the badge and the screen in the new words.
   * The call, wrap-up, home and sign-in screens re-render in place (the call keeps its video, the
   * wrap-up what was typed); the supervisor view is rebuilt by a reload, which it survives. */
  switchLanguage(lang) {
    setLanguage(lang);
    this.topbar();
    this.renderBadge(this.tellerState.state);
    if (this.lastConn) this.connStatus(...this.lastConn);
    const screen = this.screen;
    if (screen instanceof CallScreen || screen instanceof WrapupScreen) screen.relabel();
    else if (screen instanceof HomeScreen) screen.render();
    else if (!this.auth.token) this.showLogin();
    else location.reload();
  }

  /** Set the teller's state (from what just happened); every view of it follows the store. */
  setMyState(state) {
    this.tellerState.set({ state });
  }

  renderBadge(state) {
    const el = document.getElementById("my-state");
    el.textContent = state ? label("state", state) : "";
    el.dataset.state = state || "";
    el.className = `badge state-${state || "none"}`;
    el.hidden = !state;  // a supervisor (or the login) has no state: no empty pill
  }

  notice(text, kind = "info") {
    this.noticeEl.hidden = !text;
    this.noticeEl.textContent = text || "";
    this.noticeEl.dataset.kind = kind;
    clearTimeout(this.noticeTimer);
    if (text) this.noticeTimer = setTimeout(() => { this.noticeEl.hidden = true; }, 10000);
  }

  setScreen(screen) {
    if (this.screen && this.screen !== screen && this.screen.destroy) this.screen.destroy();
    this.screen = screen;
  }

  showLogin(notice = "") {
    this.setScreen(null);
    this.setMyState(null);
    this.topbar();
    renderLogin(this.root, { api: this.api, notice, onLogin: (body) => this.signedIn(body) });
  }

  stopAll() {
    this.offer.close();
    this.holdBanner.hide();
    if (this.events) this.events.stop();
    this.events = null;
    this.setScreen(null);
  }

  /** The token was refused (expired or revoked): back to the login with a clear reason. */
  expired() {
    if (this.expiring) return;
    this.expiring = true;
    this.stopAll();
    this.auth.clear();
    this.showLogin(t("login.expired"));
    this.expiring = false;
  }

  logout() {
    // Signed out here first, so a page closed or reloaded meanwhile keeps no token; then the token is
    // revoked (and a teller taken offline: no more offers) by a request that outlives the page.
    const token = this.auth.token;
    this.stopAll();
    this.auth.clear();
    history.replaceState(null, "", location.pathname);
    this.showLogin(t("login.signed_out"));
    if (token) revokeToken(this.api.url("logout"), token);
  }

  async signedIn(body) {
    this.auth.save(body);
    this.notice("");
    await this.start();
  }

  async start() {
    this.topbar();
    const role = this.auth.role;
    if (role !== "teller" && role !== "supervisor") {
      fill(this.root, h("div", { class: "center" }, h("p", { class: "card", testid: "wrong-role" }, t("login.admin"))));
      return;
    }
    this.events = new EventStream(this.api, this.auth, {
      onStatus: (status, seconds) => this.connStatus(status, seconds),
      onFatal: () => this.expired(),
    });
    this.events.on("*", (ev) => this.event(ev));
    this.events.start();
    if (role === "supervisor") {
      const sup = new SupervisorScreen(this.root, { api: this.api,
        services: Object.fromEntries(await this.loadServices()) });
      this.setScreen(sup);
      sup.start();
      return;
    }
    this.services = await this.loadServices();
    try { this.branches = (await this.seatApi.get("branches")).branches || {}; } catch { this.branches = {}; }
    await this.resumeOrHome();
  }

  connStatus(status, seconds) {
    this.lastConn = [status, seconds];
    const el = document.getElementById("conn");
    el.dataset.status = status;
    el.textContent = status === "online" ? t("conn.online") : status === "offline"
      ? t("conn.offline", { seconds }) : t("conn.connecting");
  }

  async loadServices() {
    try {
      const r = await this.api.get("services");
      return (r.services || []).map((s) => [s.code, s.name || s.code]);
    } catch {
      return [];
    }
  }

  // -- teller ---------------------------------------------------------------------------------

  async resumeOrHome() {
    const stored = this.auth.recall("call");
    const m = CALL_HASH.exec(location.hash);
    if (m && (!stored || stored.session.id !== m[1])) {
      // A link to a call: only its own teller may open it; the platform decides.
      try {
        const r = await this.api.post(`sessions/${encodeURIComponent(m[1])}/join`, {});
        this.openCall({ session: r.session || { id: m[1] }, video: r.video, started_at: Date.now() / 1000 });
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return;
        history.replaceState(null, "", location.pathname);
        this.notice(t("call.not_yours"), "warn");
        await this.showHome();
      }
      return;
    }
    if (stored && stored.phase === "wrapup") { this.showWrapup(stored); return; }
    if (stored && stored.phase === "call") { await this.resumeCall(stored); return; }
    await this.showHome();
  }

  async resumeCall(stored) {
    try {
      const r = await this.api.post(`sessions/${encodeURIComponent(stored.session.id)}/join`, {});
      stored.video = r.video || stored.video;
    } catch (err) {
      if (err instanceof ApiError && [403, 404, 409, 410].includes(err.status)) {
        // The call ended while we were away: wrap it up if it was ours.
        if (err.status === 409 || err.status === 410) { this.callEnded(stored); return; }
        this.auth.remember("call", null);
        this.notice(t("call.not_yours"), "warn");
        await this.showHome();
        return;
      }
    }
    this.openCall(stored);
  }

  async showHome() {
    const home = this.screen instanceof HomeScreen ? this.screen
      : new HomeScreen(this.root, { store: this.tellerState, onState: (s, r) => this.changeState(s, r),
        onResume: (s) => this.resumeCall({ session: s, phase: "call", started_at: s.created_at }), names: Object.fromEntries(this.services) });
    this.setScreen(home);
    // Queue lengths change without an event to the teller: refresh them while home is shown.
    clearInterval(this.homePoll);
    this.homePoll = setInterval(() => {
      if (this.screen === home) this.refreshHome(); else clearInterval(this.homePoll);
    }, HOME_REFRESH_MS);
    await this.refreshHome();
  }

  async refreshHome() {
    if (!(this.screen instanceof HomeScreen)) return;
    try {
      const asOf = this.tellerState.asOf();
      const data = await this.api.get("teller");
      const state = normaliseTeller(data).state;
      // Busy but no call on screen (the browser was closed or another one used): offer the way
      // back into the open call, else the teller is stuck with both state switches disabled.
      if (state === "busy" && !data.session) {
        const { sessions = [] } = await this.api.get("sessions").catch(() => ({}));
        data.session = sessions.find((s) => s.state !== "wrap_up" && !s.ended_at) || null;
      }
      // The data first, then the state: the store's subscribers (home among them) render once more.
      if (this.screen instanceof HomeScreen) this.screen.data = normaliseTeller(data);
      this.tellerState.fromTeller(data.teller || { state }, asOf);
      if (this.screen instanceof HomeScreen) this.screen.render(data);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      this.screen.render();
      this.notice(t("error.generic", { message: err.message }), "warn");
    }
  }

  async changeState(state, reason) {
    this.ringer.unlock();
    const body = { state };
    if (state === "not_ready" && reason) body.reason = reason;
    await this.api.post("teller/state", body);
    await this.refreshHome();
  }

  async accept(offer) {
    // The last call's wrap-up form is still open (its time ran out): saved first, never dropped.
    let saved = null;
    if (this.screen instanceof WrapupScreen) {
      try {
        saved = await this.screen.saveBeforeNextCall();
      } catch (err) {
        throw new Error(t("offer.wrapup_failed", { message: err.message }));
      }
      this.auth.remember("call", null);
    }
    let r;
    try {
      r = await this.api.post(`offers/${encodeURIComponent(offer.offer_id)}/accept`, {});
    } catch (err) {
      if (saved) await this.showHome();  // the wrap-up is saved: its form is done with
      throw err;
    }
    const session = { ...r.session, service_name: this.serviceName(r.session.service) };
    this.openCall({ session, video: r.video, started_at: Date.now() / 1000 });
    if (saved) this.notice(t("offer.wrapup_saved", { outcome: label("disposition", saved) }));
  }

  async decline(offer) {
    try {
      await this.api.post(`offers/${encodeURIComponent(offer.offer_id)}/decline`, {});
    } finally {
      await this.refreshHome();
    }
  }

  openCall(call) {
    call.phase = "call";
    this.notice("");  // an earlier warning ("you missed a call, so you are not ready") is stale now
    this.auth.remember("call", call);
    history.replaceState(null, "", `#/call/${call.session.id}`);
    this.setMyState("busy");
    const screen = new CallScreen(this.root, call, {
      api: this.api, services: this.services,
      onEnded: (c) => this.callEnded(c),
      onPersist: (c) => this.auth.remember("call", c),
    });
    this.setScreen(screen);
    screen.start();
    // The offer card that had the focus is going away: the call's first control takes it, so the
    // keyboard (and a screen reader) lands in the call rather than on the page body.
    const first = this.root.querySelector("[role=toolbar] button:not([disabled])");
    (first || this.root).focus();
    this.showHoldFor(call.session.id);
  }

  /** The call was on hold before a reload: the banner says so again. */
  async showHoldFor(sessionId) {
    try {
      const { session } = await this.api.get(`sessions/${encodeURIComponent(sessionId)}`);
      if (session && session.state === "on_hold" && this.currentSessionId() === sessionId) this.holdBanner.show();
    } catch { /* the call screen reports what matters */ }
  }

  /** The banner's Resume: through the call screen (it turns the teller's media back on). */
  async resumeFromHold() {
    const screen = this.screen instanceof CallScreen ? this.screen : null;
    if (!screen) { this.holdBanner.hide(); return; }
    if (screen.onHold) { await screen.toggleHold(); return; }
    await this.api.post(`sessions/${encodeURIComponent(screen.sessionId)}/resume`, {});
  }

  /** Ask the platform for the teller's state whatever screen is shown (an offer came and went). */
  async syncState() {
    const asOf = this.tellerState.asOf();
    try { this.tellerState.fromTeller((await this.api.get("teller")).teller, asOf); } catch { /* next event */ }
  }

  callEnded(call) {
    const ended = { ...call, phase: "wrapup", ended_at: call.ended_at || Date.now() / 1000 };
    this.auth.remember("call", ended);
    this.showWrapup(ended);
  }

  showWrapup(call) {
    history.replaceState(null, "", location.pathname);
    this.holdBanner.hide();
    this.setMyState("wrap_up");
    const screen = new WrapupScreen(this.root, call, {
      api: this.api, services: this.services, wrapupSeconds: Number(this.config.wrapup_s) || 30,
      store: this.tellerState, syncState: () => this.syncState(),
      onDone: async () => {
        this.auth.remember("call", null);
        this.setScreen(null);
        await this.showHome();
      },
    });
    this.setScreen(screen);
    screen.render();
    const asOf = this.tellerState.asOf();
    this.api.get("teller").then((d) => {
      screen.setUntil(normaliseTeller(d).wrapupUntil);
      this.tellerState.fromTeller(d.teller, asOf);
    }).catch(() => {});
  }

  serviceName(code) {
    const found = this.services.find(([c]) => c === code);
    return found ? found[1] : code;
  }

  currentSessionId() {
    return this.screen instanceof CallScreen ? this.screen.sessionId : null;
  }

  event(ev) {
    if (this.screen instanceof SupervisorScreen) { this.screen.event(ev); return; }
    const sessionId = ev.session_id || (ev.session && ev.session.id);
    switch (ev.type) {
      case "offer":
        if (!this.currentSessionId()) this.offer.show({ ...ev, branch_name: this.branches[ev.branch], service_name: this.serviceName(ev.service),
          open_wrapup: this.screen instanceof WrapupScreen });
        this.setMyState("offered");
        return;
      case "offer.expired":
      case "offer.cancelled":
        if (this.offer.offer && (!ev.offer_id || ev.offer_id === this.offer.offer.offer_id)) {
          this.offer.close();
          if (ev.type === "offer.expired") this.notice(t("offer.expired"), "warn");
          else this.notice(t("offer.gone"), "warn");
        }
        if (this.screen instanceof HomeScreen) this.refreshHome(); else this.syncState();
        return;
      case "teller.state":
        if (ev.teller) this.tellerState.fromTeller(ev.teller);
        if (this.screen instanceof HomeScreen) this.screen.render({ ...this.screen.data.raw, teller: ev.teller });
        else this.refreshHome();
        return;
      default:
        break;
    }
    if (ev.type === "session.ended" && this.screen && this.screen.call && this.screen.call.session
        && this.screen.call.session.id === sessionId) {
      // Who hung up goes with the call into wrap-up (and across a reload of it).
      this.screen.call.ended_by = ev.by || null;
      if (this.screen instanceof WrapupScreen) {
        this.screen.endedBy(ev.by);
        this.auth.remember("call", this.screen.call);
      }
    }
    if (sessionId && sessionId === this.currentSessionId()) {
      if (ev.type === "session.update" && ev.session) this.holdBanner.follow(ev.session.state);
      this.screen.event(ev);
    }
  }
}

async function boot() {
  let config = { api: "/api/" };
  try {
    const r = await fetch("config.json", { cache: "no-store" });
    if (r.ok) config = await r.json();
  } catch { /* defaults serve `cloudbank up` */ }
  const app = new SeatApp(config);
  // Diagnostics and automation: the running app, e.g. to simulate a network drop.
  window.cloudbankSeat = app;
  await app.init();
}

boot();
