// The media admin console: sign in, then tabs for the library, playlists, service definitions,
// recordings, devices and settings. Supervisors see recordings and devices only (the server enforces it too).
import { Api, ApiError, NetworkError, revokeToken } from "./api.js";
import { Auth } from "./auth.js";
import { h, fill } from "./dom.js";
import { LANGUAGES, language, onLanguageChange, setLanguage, t } from "./i18n.js";
import { renderLogin } from "./login.js";
import { renderLibrary } from "./library.js";
import { renderPlaylists } from "./playlists.js";
import { renderServices } from "./services.js";
import { renderRecordings } from "./recordings.js";
import { renderDevices } from "./devices.js";
import { renderSettings } from "./settings.js";

const TABS = [
  { id: "library", roles: ["admin"], render: renderLibrary },
  { id: "playlists", roles: ["admin"], render: renderPlaylists },
  { id: "services", roles: ["admin"], render: renderServices },
  { id: "recordings", roles: ["admin", "supervisor"], render: renderRecordings },
  { id: "devices", roles: ["admin", "supervisor"], render: renderDevices },
  { id: "settings", roles: ["admin"], render: renderSettings },
];

const auth = new Auth();
const screen = document.getElementById("screen");
const noticeEl = document.getElementById("notice");
// leave: what the shown tab returned from its render, called before another screen replaces it.
const state = { tab: null, leave: null, config: { api: "/api/", heartbeat_stale_s: 120 } };

function leaveTab() {
  const leave = state.leave;
  state.leave = null;
  if (typeof leave === "function") leave();
}

function expired() {
  auth.clear();
  showLogin(t("login.expired"));
}

const ctx = {
  auth,
  platform: null,
  media: null,
  config: state.config,
  /** Show a message above the screen; errors from the API say what was wrong. */
  notify(message, kind = "info") {
    noticeEl.textContent = message;
    noticeEl.className = `notice ${kind}`;
    noticeEl.hidden = !message;
  },
  fail(err) {
    if (err instanceof NetworkError) ctx.notify(t("error.network"), "error");
    else if (err instanceof ApiError) ctx.notify(t("error.refused", { status: err.status, message: err.message }), "error");
    else ctx.notify(t("error.generic", { message: String(err && err.message ? err.message : err) }), "error");
  },
};

function renderChrome() {
  document.title = t("app.title");
  document.getElementById("brand").textContent = t("app.title");
  document.getElementById("lang-label").textContent = t("lang.label");
  const logout = document.getElementById("logout");
  logout.textContent = t("logout");
  logout.hidden = !auth.token;
  const who = document.getElementById("who");
  who.textContent = auth.user ? `${auth.user.display_name || auth.user.username} · ${t(`role.${auth.role}`)}` : "";
  const tabs = document.getElementById("tabs");
  fill(tabs, auth.token ? TABS.filter((tab) => tab.roles.includes(auth.role)).map((tab) =>
    h("button", { type: "button", class: tab.id === state.tab ? "tab active" : "tab", testid: `tab-${tab.id}`,
      "aria-current": tab.id === state.tab ? "page" : null, onclick: () => show(tab.id) }, t(`tab.${tab.id}`))) : []);
}

function show(tabId) {
  const allowed = TABS.filter((tab) => tab.roles.includes(auth.role));
  const tab = allowed.find((x) => x.id === tabId) || allowed[0];
  state.tab = tab.id;
  ctx.notify("");
  renderChrome();
  leaveTab();
  fill(screen);
  screen.dataset.tab = tab.id;
  state.leave = tab.render(screen, ctx);
}

function showLogin(notice = "") {
  leaveTab();
  state.tab = null;
  renderChrome();
  renderLogin(screen, {
    platform: ctx.platform, notice,
    onLogin(body) {
      auth.save(body);
      show(body.user.role === "admin" ? "library" : "recordings");
    },
  });
}

async function start() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) Object.assign(state.config, await response.json());
  } catch { /* defaults */ }
  ctx.platform = new Api(state.config.api, auth, expired);
  ctx.media = new Api("api/", auth, expired);
  const lang = document.getElementById("lang");
  lang.value = language();
  document.documentElement.lang = language() === "zh" ? "zh-CN" : "en";
  lang.addEventListener("change", () => { if (LANGUAGES.includes(lang.value)) setLanguage(lang.value); });
  onLanguageChange(() => (auth.token && state.tab ? show(state.tab) : showLogin()));
  document.getElementById("logout").addEventListener("click", () => {
    // Signed out here first (nothing on the screen still loading with the token, none kept by a page
    // closed or reloaded meanwhile), then the token, held only here, is revoked.
    const token = auth.token;
    auth.clear();
    showLogin(t("login.signed_out"));
    if (token) revokeToken(ctx.platform.url("logout"), token);
  });
  if (auth.token) show(auth.role === "admin" ? "library" : "recordings");
  else showLogin();
}

start();
