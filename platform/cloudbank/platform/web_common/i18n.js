// UI language for a browser app: one string table per language; English fills any gap.
// Shared by the browser apps (seat, media); each passes its own tables and storage key.

/** tables: {en, zh, ...}; storageKey: where the person's choice is remembered. */
export function createI18n(tables, storageKey) {
  const en = tables.en;

  function initialLanguage() {
    const saved = localStorage.getItem(storageKey);
    if (saved && tables[saved]) return saved;
    return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  const current = { lang: initialLanguage(), listeners: new Set() };

  function language() {
    return current.lang;
  }

  function setLanguage(lang) {
    if (!tables[lang] || lang === current.lang) return;
    current.lang = lang;
    localStorage.setItem(storageKey, lang);
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const fn of current.listeners) fn(lang);
  }

  function onLanguageChange(fn) {
    current.listeners.add(fn);
  }

  /** The string for `key` with {name} placeholders filled from `params`; the key itself if unknown. */
  function t(key, params = {}) {
    const text = tables[current.lang][key] ?? en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
  }

  /** A label for a code from the table (`prefix.code`), or the code itself when there is none. */
  function label(prefix, code) {
    const key = `${prefix}.${code}`;
    const text = tables[current.lang][key] ?? en[key];
    return text ?? String(code ?? "");
  }

  return { language, setLanguage, onLanguageChange, t, label, LANGUAGES: Object.keys(tables) };
}
