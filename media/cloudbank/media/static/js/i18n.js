// UI language: one string table per language (../i18n/<lang>.js); English fills any gap.
import en from "../i18n/en.js";
import zh from "../i18n/zh.js";

const TABLES = { en, zh };
const STORAGE_KEY = "cloudbank.media.lang";

function initialLanguage() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved && TABLES[saved]) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

const current = { lang: initialLanguage(), listeners: new Set() };

export function language() {
  return current.lang;
}

export function setLanguage(lang) {
  if (!TABLES[lang] || lang === current.lang) return;
  current.lang = lang;
  localStorage.setItem(STORAGE_KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const fn of current.listeners) fn(lang);
}

export function onLanguageChange(fn) {
  current.listeners.add(fn);
}

/** The string for `key` with {name} placeholders filled from `params`; the key itself if unknown. */
export function t(key, params = {}) {
  const text = TABLES[current.lang][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

export const LANGUAGES = Object.keys(TABLES);
