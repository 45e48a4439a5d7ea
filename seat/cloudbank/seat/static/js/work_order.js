// The call's work order (docs/protocol.md, "Service definitions and work orders"): started from the
// service's approved definition, its form filled by the teller (a word or a selected run of words
// clicked in the live transcript goes into the focused field; spoken numbers become digits), sent to
// the customer to confirm (and sign), the customer's answer, the supervisor's authorisation
// (waiting / granted / refused with the reason: change and ask again), the dual-recording checklist
// with the time each item was heard on the recording and what is still missing, forbidden-phrase
// warnings, and Complete. It follows `work_order.update` and is rebuilt from the platform on a reload.
import { h, fill, clock } from "./dom.js";
import { t } from "./i18n.js";
import { spokenNumber } from "./spoken_numbers.js";

const OPEN = ["draft", "awaiting_customer", "awaiting_authorisation"];
const STATE_KEY = {
  draft: "wo.state_draft", awaiting_customer: "wo.state_awaiting_customer",
  awaiting_authorisation: "wo.state_awaiting_authorisation", completed: "wo.state_completed",
  cancelled: "wo.state_cancelled",
};

/** What is wrong with `value` for `field` (a definition's field), as a message; "" when it fits. */
export function fieldError(field, value) {
  const v = String(value ?? "");
  if (!v) {
    if (!field.required) return "";
    return t(field.kind === "checkbox" ? "wo.err_tick" : "wo.err_required");
  }
  if (field.kind === "number") {
    if (!/^-?\d+(\.\d+)?$/.test(v)) return t("wo.err_number");
    const n = Number(v);
    if (field.min !== null && field.min !== undefined && n < field.min) return t("wo.err_min", { min: field.min });
    if (field.max !== null && field.max !== undefined && n > field.max) return t("wo.err_max", { max: field.max });
  } else if (field.kind === "date") {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(Date.parse(v))) return t("wo.err_date");
  } else if (field.kind === "select") {
    if (!(field.options || []).includes(v)) return t("wo.err_option");
  } else if (field.kind === "checkbox") {
    if (field.required && v !== "true") return t("wo.err_tick");
  } else {
    const max = field.max_length || 200;
    if (v.length > max) return t("wo.err_length", { max });
    if (field.pattern) {
      let re = null;
      try { re = new RegExp(`^(?:${field.pattern})$`, "u"); } catch { re = null; }
      if (re && !re.test(v)) return t("wo.err_pattern");
    }
  }
  return "";
}

/** The word of the transcript under a click (its letters and digits, punctuation trimmed), or "". */
function wordAt(x, y) {
  let node = null;
  let offset = 0;
  if (document.caretRangeFromPoint) {
    const r = document.caretRangeFromPoint(x, y);
    if (r) { node = r.startContainer; offset = r.startOffset; }
  } else if (document.caretPositionFromPoint) {
    const p = document.caretPositionFromPoint(x, y);
    if (p) { node = p.offsetNode; offset = p.offset; }
  }
  if (!node || node.nodeType !== Node.TEXT_NODE) return "";
  const text = node.textContent;
  let a = offset;
  let b = offset;
  while (a > 0 && /\S/.test(text[a - 1])) a -= 1;
  while (b < text.length && /\S/.test(text[b])) b += 1;
  return trimWord(text.slice(a, b));
}

function trimWord(s) {
  return s.replace(/^[^\p{L}\p{N}$€£¥]+|[^\p{L}\p{N}]+$/gu, "");
}

export class WorkOrderPanel {
  /**
   * api: the Api; sessionId, service: the call's; startedAt: the call's start (epoch s, for times);
   * language(): the speech language ("en-us"), for spoken numbers; onNote(key, params, kind): a call log line.
   */
  constructor(api, { sessionId, service, language = () => "en", onNote = () => {} }) {
    this.api = api;
    this.sessionId = sessionId;
    this.service = service;
    this.language = language;
    this.onNote = onNote;
    this.wo = null;             // the work order as the platform last said
    this.definitions = new Map();  // version -> definition
    this.available = null;      // the service's approved definition (before a work order exists), or false
    this.dirty = new Map();     // field name -> a value typed here and not saved yet
    this.errors = new Map();    // field name -> message
    this.target = null;         // the field transcript words go into (the one last focused)
    this.forbidden = [];        // forbidden phrases heard in this call: {phrase, at, speaker}
    this.message = null;        // {text, kind}: the last refusal or result
    this.missingNow = [];       // checklist items Complete was refused for
    this.busy = false;
    this.cancelling = false;
    this.el = h("section", { class: "card work-order", testid: "work-order", "aria-labelledby": "wo-title", hidden: true });
  }

  // -- from the platform ----------------------------------------------------------------------------

  /** The call's work order (the newest), else whether the service has a definition to start from. */
  async load() {
    try {
      const id = encodeURIComponent(this.sessionId);
      const list = (await this.api.get(`sessions/${id}/work_orders`)).work_orders || [];
      const newest = list[list.length - 1];
      if (newest) await this.fetch(newest.id);
      else await this.loadDefinition();
    } catch (err) {
      this.say(t("wo.load_failed", { message: err.message }), "warn");
    }
    this.render();
  }

  async loadDefinition() {
    if (!this.service) { this.available = false; return; }
    try {
      const r = await this.api.get(`services/${encodeURIComponent(this.service)}/definition`);
      this.available = r.version || false;
    } catch (err) {
      if (err.status !== 404) throw err;
      this.available = false;   // the service has no business form: nothing to show
    }
  }

  /** GET the work order (the platform ticks the checklist from what was heard as it answers). */
  async fetch(id = this.wo && this.wo.id) {
    if (!id) return;
    const r = await this.api.get(`work_orders/${encodeURIComponent(id)}`);
    this.update(r.work_order);
  }

  /** A work order as the platform sent it (a reply or a `work_order.update`). */
  update(wo) {
    if (!wo || (this.wo && wo.id !== this.wo.id && wo.created_at < this.wo.created_at)) return;
    if (this.wo && wo.id === this.wo.id && wo.updated_at < this.wo.updated_at) return;   // an older event
    if (wo.definition) this.definitions.set(wo.definition_version, wo.definition);
    const known = this.definitions.has(wo.definition_version);
    const before = this.wo;
    this.wo = wo;
    if (!before || before.id !== wo.id) { this.dirty.clear(); this.errors.clear(); }
    // Values the customer or the platform changed replace what this screen had unsaved only in a draft.
    if (wo.state !== "draft") this.dirty.clear();
    if (before && before.state !== wo.state) this.stateChanged(before, wo);
    if (!known) { this.fetch(wo.id).catch(() => {}); return; }
    if (this.shown(wo) === this.renderedSig) return;   // e.g. the echo of this screen's own save
    this.render();
  }

  /** What the screen shows of a work order, to skip re-rendering (and moving the caret) for nothing. */
  shown(wo) {
    const { updated_at: _u, ...rest } = wo || {};
    return JSON.stringify(rest);
  }

  stateChanged(before, wo) {
    this.missingNow = [];
    if (wo.state === "draft" && before.state === "awaiting_customer" && wo.confirmation === null) {
      this.say(t("wo.customer_declined"), "warn");
    } else if (wo.state === "completed") this.say(t("wo.completed_msg"), "ok");
    else this.message = null;
  }

  /** A `keyword` event (live, or from the call's history): forbidden ones warn; heard phrases may tick items. */
  keyword(ev, fromHistory = false) {
    if (ev.kind === "forbidden") {
      const key = `${ev.speaker}|${ev.at}|${ev.phrase}`;
      if (!this.forbidden.some((f) => f.key === key)) {
        this.forbidden.push({ key, phrase: ev.phrase, at: Number(ev.at) || 0, speaker: ev.speaker || "teller" });
        if (!fromHistory) this.onNote("wo.forbidden_note", { phrase: ev.phrase }, "warn");
        this.render();
      }
    }
    if (!fromHistory && this.wo && OPEN.includes(this.wo.state) && this.missing().length) {
      clearTimeout(this.tickTimer);
      // After this screen's own saves: the platform ticks as it answers, and a tick that collides with
      // a save is not made (it would be refused as a change meanwhile).
      this.tickTimer = setTimeout(() => this.write(() => this.fetch()).catch(() => {}), 300);
    }
  }

  /** An `authorisation.result` event: the work order's own state comes with its update; fetch to be sure. */
  authorisationResult() {
    if (this.wo && this.wo.state === "awaiting_authorisation") this.fetch().catch(() => {});
  }

  // -- the transcript -------------------------------------------------------------------------------

  /** Words clicked or selected in `transcriptEl` go into the focused field. */
  attach(transcriptEl) {
    transcriptEl.addEventListener("mouseup", (e) => {
      if (!this.target || !this.editable()) return;
      const sel = window.getSelection();
      let text = "";
      if (sel && !sel.isCollapsed && transcriptEl.contains(sel.anchorNode)) text = sel.toString().replace(/\s+/g, " ").trim();
      else if (e.target.closest && e.target.closest(".text")) text = wordAt(e.clientX, e.clientY);
      if (text) this.take(text);
    });
  }

  /** Put transcript text into the target field: numbers as digits, a select's matching option, text at the caret. */
  take(text) {
    const field = this.field(this.target);
    const input = this.inputs && this.inputs.get(this.target);
    if (!field || !input) return;
    let value;
    if (field.kind === "number") {
      value = spokenNumber(text, this.language());
      if (value === null) { this.setError(field.name, t("wo.err_not_number", { text })); return; }
    } else if (field.kind === "select") {
      const lower = trimWord(text).toLowerCase();
      value = (field.options || []).find((o) => o.toLowerCase() === lower)
        || (field.options || []).find((o) => o.toLowerCase().includes(lower));
      if (!value) { this.setError(field.name, t("wo.err_no_option", { text })); return; }
    } else if (field.kind === "checkbox") {
      return;
    } else {
      const current = input.value;
      const a = this.caret ? this.caret[0] : current.length;
      const b = this.caret ? this.caret[1] : current.length;
      const before = current.slice(0, a);
      const after = current.slice(b);
      const pad = before && !/\s$/.test(before) ? " " : "";
      value = `${before}${pad}${text}${after && !/^\s/.test(after) ? " " : ""}${after}`;
      this.caret = [before.length + pad.length + text.length, before.length + pad.length + text.length];
    }
    const caret = this.caret;
    input.value = value;
    this.edited(field, value);
    input.focus();
    if (caret && input.setSelectionRange && field.kind !== "select") {
      try { input.setSelectionRange(caret[0], caret[1]); } catch { /* not a text input */ }
    }
  }

  // -- editing ----------------------------------------------------------------------------------------

  definition() {
    return this.wo ? this.definitions.get(this.wo.definition_version) : null;
  }

  field(name) {
    const d = this.definition();
    return d ? d.fields.find((f) => f.name === name) : null;
  }

  editable() {
    return Boolean(this.wo && this.wo.state === "draft" && !this.busy);
  }

  value(name) {
    if (this.dirty.has(name)) return this.dirty.get(name);
    return this.wo && this.wo.values && name in this.wo.values ? String(this.wo.values[name]) : "";
  }

  missing() {
    return ((this.wo && this.wo.checklist) || []).filter((i) => !i.heard && !i.override).map((i) => i.id);
  }

  setError(name, message) {
    if (message) this.errors.set(name, message); else this.errors.delete(name);
    const el = this.el.querySelector(`[data-testid="wo-error-${name}"]`);
    if (el) el.textContent = message || "";
    const input = this.inputs && this.inputs.get(name);
    if (input) input.setAttribute("aria-invalid", String(Boolean(message)));
  }

  /** A field changed here: checked at once, saved when it fits. */
  edited(field, value) {
    this.dirty.set(field.name, value);
    const error = fieldError(field, value);
    this.setError(field.name, error);
    if (!error) this.save({ [field.name]: value }).catch(() => {});
  }

  /** The platform's writes one after another: a save and a send at once would refuse each other (409). */
  write(fn) {
    const run = (this.writes || Promise.resolve()).catch(() => {}).then(fn);
    this.writes = run;
    return run;
  }

  save(values) {
    return this.write(() => this.saveNow(values));
  }

  async saveNow(values, retry = true) {
    if (!this.wo || this.wo.state !== "draft") return;
    const saved = this.wo.values || {};
    const change = Object.fromEntries(Object.entries(values).filter(([n, v]) => (saved[n] ?? "") !== v));
    if (!Object.keys(change).length) { for (const n of Object.keys(values)) this.dirty.delete(n); return; }
    values = change;
    try {
      const r = await this.api.post(`work_orders/${encodeURIComponent(this.wo.id)}/values`, { values });
      for (const [name, v] of Object.entries(values)) if (this.dirty.get(name) === v) this.dirty.delete(name);
      this.quietUpdate(r.work_order);
    } catch (err) {
      // Changed meanwhile by the platform (a checklist tick): the same values, once more.
      if (err.status === 409 && retry && this.wo.state === "draft") {
        await this.fetch().catch(() => {});
        return this.saveNow(values, false);
      }
      const name = Object.keys(values)[0];
      this.setError(name, err.message);
      throw err;
    }
  }

  /** A reply to this screen's own save: kept without re-rendering the form being typed in. */
  quietUpdate(wo) {
    if (wo.definition) this.definitions.set(wo.definition_version, wo.definition);
    this.wo = wo;
    this.renderedSig = this.shown(wo);
  }

  // -- actions ----------------------------------------------------------------------------------------

  async act(fn) {
    if (this.busy) return;
    this.busy = true;
    this.message = null;
    this.render();
    try {
      const r = await this.write(fn);
      if (r && r.work_order) this.update(r.work_order);
    } catch (err) {
      this.missingNow = (err.body && Array.isArray(err.body.missing)) ? err.body.missing : [];
      this.say(err.message, "warn");
    } finally {
      this.busy = false;
      this.render();
    }
  }

  start() {
    return this.act(async () => {
      const r = await this.api.post(`sessions/${encodeURIComponent(this.sessionId)}/work_orders`, {});
      this.onNote("wo.started_note", { title: (r.work_order.definition || {}).title || "" });
      return r;
    });
  }

  /** Save what is typed, check every field, then push the form to the customer. */
  send() {
    const d = this.definition();
    if (!d) return null;
    let bad = null;
    for (const f of d.fields) {
      const error = fieldError(f, this.value(f.name));
      this.setError(f.name, error);
      if (error && !bad) bad = f.name;
    }
    if (bad) {
      this.say(t("wo.fix_fields"), "warn");
      const input = this.inputs.get(bad);
      if (input) input.focus();
      return null;
    }
    return this.act(async () => {
      if (this.dirty.size) await this.saveNow(Object.fromEntries(this.dirty));
      const r = await this.api.post(`work_orders/${encodeURIComponent(this.wo.id)}/confirm`, {});
      this.onNote("wo.sent_note", { title: d.title });
      return r;
    });
  }

  reopen() {
    return this.act(() => this.api.post(`work_orders/${encodeURIComponent(this.wo.id)}/reopen`, {}));
  }

  complete() {
    return this.act(async () => {
      const r = await this.api.post(`work_orders/${encodeURIComponent(this.wo.id)}/complete`, {});
      this.onNote("wo.completed_note", { title: (this.definition() || {}).title || "" });
      return r;
    });
  }

  cancel(reason) {
    return this.act(async () => {
      const r = await this.api.post(`work_orders/${encodeURIComponent(this.wo.id)}/cancel`, { reason });
      this.cancelling = false;
      return r;
    });
  }

  say(text, kind = "info") {
    this.message = { text, kind };
    if (this.msgEl) { this.msgEl.textContent = text; this.msgEl.dataset.kind = kind; }
    this.reveal = true;
  }

  // -- the screen ---------------------------------------------------------------------------------------

  render() {
    const active = document.activeElement && this.el.contains(document.activeElement) ? document.activeElement : null;
    const focused = active ? active.dataset.testid : null;
    const sel = active && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
    this.renderedSig = this.shown(this.wo);
    this.inputs = new Map();
    this.msgEl = h("p", { class: "wo-message", testid: "wo-message", role: "alert",
      "data-kind": this.message ? this.message.kind : "" }, this.message ? this.message.text : "");
    const d = this.definition();
    if (!this.wo || !d) {
      this.el.hidden = !this.available;
      if (this.available) {
        fill(this.el, h("h2", { id: "wo-title" }, t("wo.title")),
          h("p", { class: "muted" }, t("wo.can_start", { title: this.available.definition.title,
            version: this.available.version })),
          h("button", { type: "button", class: "primary", testid: "wo-start", disabled: this.busy,
            onclick: () => this.start() }, t("wo.start")),
          this.msgEl);
      }
      return;
    }
    const wo = this.wo;
    this.el.hidden = false;
    this.el.dataset.state = wo.state;
    this.el.dataset.workOrder = wo.id;
    fill(this.el,
      h("div", { class: "wo-head" },
        h("h2", { id: "wo-title" }, d.title, " ", h("span", { class: "muted wo-version" }, t("wo.version", { version: wo.definition_version }))),
        h("span", { class: `wo-state wo-state-${wo.state}`, testid: "wo-state", "data-state": wo.state }, t(STATE_KEY[wo.state] || "wo.state_draft"))),
      this.renderForm(d, wo),
      this.renderCustomer(wo),
      this.renderAuthorisation(d, wo),
      this.renderChecklist(wo),
      this.renderWarnings(),
      this.renderActions(wo),
      this.msgEl);
    // A refusal or result is shown where the teller looks: the card scrolls to it.
    if (this.reveal && this.message) {
      this.reveal = false;
      requestAnimationFrame(() => { if (this.msgEl.isConnected) this.msgEl.scrollIntoView({ block: "nearest" }); });
    }
    if (focused) {
      const again = this.el.querySelector(`[data-testid="${focused}"]`);
      if (again && !again.disabled) {
        again.focus();
        if (sel && again.setSelectionRange) { try { again.setSelectionRange(sel[0], sel[1]); } catch { /* not text */ } }
      }
    }
  }

  /** Sent, decided or done: the values as a compact list (the form comes back with Change). */
  renderValues(d, wo) {
    const shown = (wo.confirmation && wo.confirmation.values_shown) || null;
    const said = (values, name) => (values && values[name] !== undefined && values[name] !== null ? String(values[name]) : "");
    const dl = h("dl", { class: "wo-values", testid: "wo-values" });
    for (const f of d.fields) {
      const v = said(wo.values, f.name);
      const text = f.kind === "checkbox" ? t(v === "true" ? "pushes.yes" : "pushes.no") : v || t("pushes.blank");
      const changed = shown && f.name in shown && said(shown, f.name) !== v;
      dl.append(h("dt", {}, f.label), h("dd", { "data-field": f.name }, text,
        changed ? h("span", { class: "wo-changed", testid: `wo-changed-${f.name}` }, ` ${t("wo.customer_changed", { value: said(shown, f.name) })}`) : null));
    }
    return dl;
  }

  renderForm(d, wo) {
    if (wo.state !== "draft") return this.renderValues(d, wo);
    const editable = this.editable();
    const shown = (wo.confirmation && wo.confirmation.values_shown) || {};
    const grid = h("div", { class: "wo-fields" });
    for (const f of d.fields) {
      const id = `wo-f-${f.name}`;
      const value = this.value(f.name);
      let input;
      if (f.kind === "select") {
        input = h("select", { id, testid: `wo-field-${f.name}`, disabled: !editable },
          h("option", { value: "" }, t("wo.choose")),
          (f.options || []).map((o) => h("option", { value: o }, o)));
        input.value = value;
        input.addEventListener("change", () => this.edited(f, input.value));
      } else if (f.kind === "checkbox") {
        input = h("input", { id, type: "checkbox", testid: `wo-field-${f.name}`, disabled: !editable, checked: value === "true" });
        input.addEventListener("change", () => this.edited(f, input.checked ? "true" : "false"));
      } else {
        const attrs = f.kind === "number" ? { inputmode: "decimal" } : f.kind === "date" ? { type: "date" } : { maxlength: String(f.max_length || 200) };
        input = h("input", { id, type: "text", testid: `wo-field-${f.name}`, ...attrs, value, disabled: !editable,
          autocomplete: "off" });
        // Checked and saved when the teller leaves the field (or presses Enter); a re-render while typing
        // (an event for another field) keeps the typed text in `dirty`, so nothing is lost either way.
        const commit = () => {
          if (!this.dirty.has(f.name) || !this.editable()) return;
          // A number typed as words ("five thousand") becomes digits too.
          if (f.kind === "number" && input.value && !/^-?\d+(\.\d+)?$/.test(input.value.trim())) {
            const n = spokenNumber(input.value, this.language());
            if (n !== null) input.value = n;
          }
          this.edited(f, input.value.trim());
        };
        input.addEventListener("blur", commit);
        input.addEventListener("keydown", (e) => { if (e.key === "Enter") commit(); });
        input.addEventListener("input", () => { this.dirty.set(f.name, input.value); });
      }
      input.setAttribute("aria-describedby", `wo-e-${f.name}`);
      input.addEventListener("focus", () => this.aim(f.name));
      input.addEventListener("blur", () => {
        if (input.selectionStart !== undefined && input.selectionStart !== null) this.caret = [input.selectionStart, input.selectionEnd];
      });
      if (this.errors.has(f.name)) input.setAttribute("aria-invalid", "true");
      this.inputs.set(f.name, input);
      const said = (values, name) => (values && values[name] !== undefined && values[name] !== null ? String(values[name]) : "");
      const changed = f.name in shown && wo.confirmation && wo.confirmation.values
        && said(wo.confirmation.values, f.name) !== said(shown, f.name);
      const label = h("span", {}, f.label, f.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null,
        f.confirm ? h("span", { class: "muted wo-confirm" }, ` · ${t("wo.customer_confirms")}`) : null);
      const cls = `field wo-field${f.kind === "checkbox" ? " wo-check" : ""}${this.target === f.name ? " wo-target" : ""}`;
      grid.append(h("div", { class: cls, "data-field": f.name },
        f.kind === "checkbox" ? h("label", { for: id, class: "wo-checkbox" }, input, label) : h("label", { for: id }, label),
        f.kind === "checkbox" ? null : input,
        changed ? h("span", { class: "wo-changed", testid: `wo-changed-${f.name}` }, t("wo.customer_changed", { value: String(shown[f.name]) })) : null,
        h("span", { class: "form-error", id: `wo-e-${f.name}`, testid: `wo-error-${f.name}` }, this.errors.get(f.name) || "")));
    }
    const hint = editable ? h("p", { class: "muted wo-hint", testid: "wo-hint" },
      this.target && this.field(this.target) ? t("wo.hint_target", { field: this.field(this.target).label }) : t("wo.hint")) : null;
    return h("form", { class: "wo-form", testid: "wo-form", "aria-label": d.title, onsubmit: (e) => e.preventDefault() }, grid, hint);
  }

  /** The field transcript words go into: the one focused last (clicking the transcript takes the focus). */
  aim(name) {
    this.target = name;
    for (const el of this.el.querySelectorAll(".wo-field")) el.classList.toggle("wo-target", el.dataset.field === name);
    const hint = this.el.querySelector("[data-testid=wo-hint]");
    const f = this.field(name);
    if (hint && f) hint.textContent = t("wo.hint_target", { field: f.label });
    this.caret = null;
  }

  renderCustomer(wo) {
    const sent = Boolean(wo.pushes && wo.pushes.form);
    if (!sent && !wo.confirmation) return null;
    const c = wo.confirmation;
    let state = "waiting";
    let text = t("wo.customer_waiting");
    if (c && c.answer === "accept") {
      state = "confirmed";
      text = t("wo.customer_confirmed", { time: new Date(c.at * 1000).toLocaleTimeString() });
    } else if (c && c.answer === "decline") { state = "declined"; text = t("wo.customer_declined"); }
    else if (wo.state === "draft") return null;
    const sig = wo.signature;
    const sigText = !(wo.pushes && wo.pushes.signature) ? null
      : sig && sig.answer === "accept" ? t("wo.signed") : t("wo.signature_waiting");
    return h("div", { class: `wo-customer wo-${state}`, testid: "wo-customer", "data-state": state },
      h("h3", {}, t("wo.customer")), h("p", { testid: "wo-customer-answer" }, text),
      sigText ? h("p", { testid: "wo-signature", "data-state": sig && sig.answer === "accept" ? "signed" : "waiting" }, sigText) : null,
      c && c.sha256 ? h("p", { class: "muted wo-hash", title: c.sha256 }, t("wo.confirmed_hash", { hash: c.sha256.slice(0, 12) })) : null);
  }

  renderAuthorisation(d, wo) {
    const a = wo.authorisation;
    if (!a) {
      if (d.authorisation === "never") return null;
      const needs = d.authorisation === "always" ? t("wo.auth_always")
        : t("wo.auth_above", { field: (d.fields.find((f) => f.name === d.authorisation_field) || {}).label || d.authorisation_field,
          amount: d.authorisation_above });
      return h("div", { class: "wo-auth", testid: "wo-auth", "data-state": "none" }, h("h3", {}, t("wo.auth")), h("p", { class: "muted" }, needs));
    }
    const text = a.state === "granted" ? t("wo.auth_granted", { reason: a.decision_reason || "" })
      : a.state === "refused" ? t("wo.auth_refused", { reason: a.decision_reason || t("wo.no_reason") })
        : t("wo.auth_waiting");
    return h("div", { class: `wo-auth wo-auth-${a.state}`, testid: "wo-auth", "data-state": a.state },
      h("h3", {}, t("wo.auth")), h("p", { testid: "wo-auth-text" }, text),
      a.state === "refused" ? h("p", { class: "muted" }, t("wo.auth_refused_next")) : null);
  }

  renderChecklist(wo) {
    const items = wo.checklist || [];
    if (!items.length) return null;
    const missing = this.missing();
    const list = h("ol", { class: "wo-checklist", testid: "wo-checklist" });
    for (const item of items) {
      const state = item.heard ? "heard" : item.override ? "override" : "missing";
      const flagged = this.missingNow.includes(item.id);
      list.append(h("li", { class: `wo-item wo-item-${state}${flagged ? " wo-flagged" : ""}`, testid: "wo-check-item",
        "data-item": item.id, "data-state": state },
      h("span", { class: "wo-mark", "aria-hidden": "true" }, state === "missing" ? "○" : "✓"), " ",
      h("span", { class: "wo-item-label" }, item.label || item.phrase),
      h("span", { class: "muted wo-item-who" }, ` · ${t(item.speaker === "customer" ? "wo.by_customer" : "wo.by_teller")} “${item.phrase}”`),
      " ",
      h("span", { class: "wo-item-at", testid: "wo-check-at" },
        state === "heard" ? t("wo.heard_at", { time: clock(item.heard.at) })
          : state === "override" ? t("wo.overridden", { reason: item.override.reason || "" }) : t("wo.not_heard"))));
    }
    return h("div", { class: "wo-script" },
      h("h3", {}, t("wo.checklist")), list,
      h("p", { class: missing.length ? "wo-missing" : "wo-all", testid: "wo-missing", "data-count": String(missing.length) },
        missing.length ? t("wo.still_missing", { count: missing.length }) : t("wo.all_heard")));
  }

  renderWarnings() {
    if (!this.forbidden.length) return null;
    return h("ul", { class: "wo-warnings", testid: "wo-warnings", role: "alert" },
      this.forbidden.map((f) => h("li", { testid: "wo-forbidden", "data-phrase": f.phrase },
        t("wo.forbidden", { phrase: f.phrase, time: clock(f.at) }))));
  }

  renderActions(wo) {
    const bar = h("div", { class: "wo-actions" });
    const btn = (testid, key, onclick, cls = "") => h("button", { type: "button", testid, class: cls, disabled: this.busy, onclick }, t(key));
    if (wo.state === "draft") bar.append(btn("wo-send", "wo.send", () => this.send(), "primary"));
    if (wo.state === "awaiting_customer" || wo.state === "awaiting_authorisation") {
      bar.append(btn("wo-complete", "wo.complete", () => this.complete(), "primary"));
      const refused = wo.authorisation && wo.authorisation.state === "refused";
      bar.append(btn("wo-reopen", refused ? "wo.change_ask_again" : "wo.change", () => this.reopen()));
    }
    if (OPEN.includes(wo.state)) {
      if (this.cancelling) {
        const reason = h("input", { id: "wo-cancel-reason", testid: "wo-cancel-reason", maxlength: "500" });
        bar.append(h("label", { class: "field inline", for: "wo-cancel-reason" }, h("span", {}, t("wo.cancel_reason")), reason),
          btn("wo-cancel-confirm", "wo.cancel_confirm", () => {
            if (!reason.value.trim()) { this.say(t("wo.cancel_reason_needed"), "warn"); reason.focus(); return; }
            this.cancel(reason.value.trim());
          }, "danger"));
      } else bar.append(btn("wo-cancel", "wo.cancel", () => { this.cancelling = true; this.render(); }));
    }
    if (wo.state === "cancelled") bar.append(btn("wo-start", "wo.start_again", () => this.start(), "primary"));
    return bar.children.length ? bar : null;
  }
}
