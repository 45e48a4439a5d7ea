// Building DOM nodes without innerHTML: text always goes in as text, so nothing from the
// network (names, file names, manifests) can become markup; the CSP forbids inline script anyway.
// Shared by the browser apps (seat, media): each serves this folder at <app>/common/.

/**
 * h("button", {testid: "x", onclick: fn, class: "big"}, "label", child, ...)
 * attrs: testid -> data-testid; on<event> -> listener; boolean true -> empty attribute;
 * false/null/undefined -> omitted; "text" -> textContent.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "testid") el.dataset.testid = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  return append(el, children);
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  return append(clear(el), children);
}

/** A labelled input; returns {field, input}. */
export function field(testid, label, attrs = {}) {
  const id = `f-${testid}`;
  const input = h(attrs.tag || "input", { id, testid, ...attrs, tag: null });
  return { field: h("label", { class: "field", for: id }, h("span", {}, label), input), input };
}

/** A labelled select. options: [[value, label], ...] */
export function select(testid, label, options, attrs = {}) {
  const id = `f-${testid}`;
  const input = h("select", { id, testid, ...attrs }, options.map(([value, text]) => h("option", { value }, text)));
  return { field: h("label", { class: "field", for: id }, h("span", {}, label), input), input };
}

/** "mm:ss" (or "h:mm:ss") for a number of seconds. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(hh ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function when(epochSeconds) {
  if (!epochSeconds) return "—";
  return new Date(epochSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}
