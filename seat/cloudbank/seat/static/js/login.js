// The login screen: username and password, and a message that says exactly what went wrong.
import { ApiError, NetworkError } from "./api.js";
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";

/** Why a sign-in was refused, in the person's language. */
export function loginMessage(err) {
  if (err instanceof NetworkError) return t("error.network");
  if (err instanceof ApiError) {
    const seconds = err.body.retry_after ?? 60;
    if (err.status === 429) return err.body.locked ? t("login.locked", { seconds }) : t("login.throttled", { seconds });
    if (err.status === 401) return t("login.wrong");
    if (err.status === 400) return t("login.missing");
    return t("error.generic", { message: err.message });
  }
  return t("error.generic", { message: String(err) });
}

/**
 * Render the login form into `root`. onLogin(body) is called with the API's login answer.
 * `notice` is shown above the form (e.g. "your session has expired").
 */
export function renderLogin(root, { api, onLogin, notice = "" }) {
  const message = h("p", { class: "form-error", testid: "login-error", role: "alert", "aria-live": "assertive" });
  const info = notice ? h("p", { class: "form-info", testid: "login-notice", role: "status" }, notice) : null;
  const username = h("input", { id: "login-username", testid: "login-username", name: "username",
    autocomplete: "username", required: true, maxlength: "64", autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { id: "login-password", testid: "login-password", name: "password",
    type: "password", autocomplete: "current-password", required: true, maxlength: "256" });
  const submit = h("button", { type: "submit", class: "primary big", testid: "login-submit" }, t("login.submit"));

  const form = h("form", { class: "card login", testid: "login-form", novalidate: true,
    "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, t("login.title")),
    info,
    h("label", { class: "field", for: "login-username" }, h("span", {}, t("login.username")), username),
    h("label", { class: "field", for: "login-password" }, h("span", {}, t("login.password")), password),
    message,
    submit);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.textContent = "";
    if (!username.value.trim() || !password.value) {
      message.textContent = t("login.missing");
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t("login.busy");
    try {
      const body = await api.post("login", { username: username.value.trim(), password: password.value });
      password.value = "";
      await onLogin(body);
    } catch (err) {
      message.textContent = loginMessage(err);
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = t("login.submit");
    }
  });

  fill(root, h("div", { class: "center" }, form));
  username.focus();
}
