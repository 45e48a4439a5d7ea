// The customer screens' UI language (the phone page and the kiosk screen): the string tables in
// ../i18n/<lang>.js, the switch in the page header, and text that follows the language. An element
// whose text is a table's string carries its key in data-i18n (and its parameters, as JSON, in
// data-i18n-params), so changing the language re-renders it in place, without a reload.
import en from "../i18n/en.js";
import zh from "../i18n/zh.js";
import { createI18n } from "../../common/i18n.js";

export const { language, setLanguage, onLanguageChange, t, LANGUAGES } =
  createI18n({ en, zh }, "cloudbank.customer.lang");

/** Set `el`'s text to the string `key` (with `params`), and keep it in that language. */
export function say(el, key, params = {}) {
  el.dataset.i18n = key;
  if (Object.keys(params).length) el.dataset.i18nParams = JSON.stringify(params);
  else delete el.dataset.i18nParams;
  el.textContent = t(key, params);
  return el;
}

/** Re-render every element that carries a key (text, placeholder, accessible name). */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n, el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : {});
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  document.documentElement.lang = language() === "zh" ? "zh-CN" : "en";
}

/** The header's language buttons ([data-lang]): pressing one switches the page at once. */
export function mountLanguageSwitch() {
  const buttons = [...document.querySelectorAll("[data-lang]")];
  const mark = () => { for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.lang === language())); };
  for (const b of buttons) b.addEventListener("click", () => setLanguage(b.dataset.lang));
  onLanguageChange(() => { translatePage(); mark(); });
  translatePage();
  mark();
}

/** The language a new customer starts in: the device's, not the one the last customer chose. */
export function resetLanguage() {
  setLanguage((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");
}
