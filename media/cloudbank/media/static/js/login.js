// The login screen (the platform's POST /api/login): admins and supervisors only.
import { ApiError, NetworkError } from "./api.js";
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";

export function loginMessage(err) {
  if (err instanceof NetworkError) return t("error.network");
  if (err instanceof ApiError) {
    const seconds = err.body.retry_after ?? 60;
    if (err.status === 429) return t("login.throttled", { seconds });
    if (err.status === 401) return t("login.wrong");
    if (err.status === 400) return t("login.missing");
  }
  return t("error.generic", { message: err.message || String(err) });
}

export function renderLogin(root, { platform, onLogin, notice = "" }) {
  const message = h("p", { class: "form-error", testid: "login-error", role: "alert" });
  const username = h("input", { id: "login-username", testid: "login-username", autocomplete: "username",
    maxlength: "64", autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { id: "login-password", testid: "login-password", type: "password",
    autocomplete: "current-password", maxlength: "256" });
  const submit = h("button", { type: "submit", class: "primary", testid: "login-submit" }, t("login.submit"));
  const form = h("form", { class: "card login", testid: "login-form", novalidate: true },
    h("h1", {}, t("login.title")),
    notice ? h("p", { class: "form-info", testid: "login-notice" }, notice) : null,
    h("label", { class: "field", for: "login-username" }, h("span", {}, t("login.username")), username),
    h("label", { class: "field", for: "login-password" }, h("span", {}, t("login.password")), password),
    message, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.textContent = "";
    if (!username.value.trim() || !password.value) {
      message.textContent = t("login.missing");
      return;
    }
    submit.disabled = true;
    try {
      const body = await platform.post("login", { username: username.value.trim(), password: password.value });
      password.value = "";
      if (!["admin", "supervisor"].includes(body.user.role)) {
        message.textContent = t("login.not_staff");
        return;
      }
      onLogin(body);
    } catch (err) {
      message.textContent = loginMessage(err);
      password.value = "";
    } finally {
      submit.disabled = false;
    }
  });
  fill(root, form);
  username.focus();
}
