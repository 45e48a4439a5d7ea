// The call's side panel forms: push a form or a document, request a signature, ask a supervisor
// for authorisation, transfer. One small labelled form at a time; Escape or Cancel closes it.
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";

function slug(text, i) {
  const s = text.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "");
  return s || `field_${i + 1}`;
}

/** The request body for each action from the panel's inputs. */
export const ACTIONS = {
  "push-form": {
    title: "call.push_form",
    inputs: [["title", "call.title_field", "input"], ["fields", "call.fields", "textarea"]],
    request: (v) => ["push", {
      kind: "form", title: v.title,
      fields: v.fields.split("\n").map((s) => s.trim()).filter(Boolean)
        .map((line, i) => ({ name: slug(line, i), label: line, kind: "text" })),
    }],
  },
  "push-document": {
    title: "call.push_document",
    inputs: [["title", "call.title_field", "input"], ["url", "call.url", "input"]],
    request: (v) => ["push", { kind: "document", title: v.title, url: v.url }],
  },
  "request-signature": {
    title: "call.request_signature",
    inputs: [["title", "call.title_field", "input"]],
    request: (v) => ["push", { kind: "signature_request", title: v.title }],
  },
  "ask-authorisation": {
    title: "call.ask_authorisation",
    inputs: [["reason", "call.reason", "textarea"]],
    request: (v) => ["authorisations", { reason: v.reason }],
  },
  transfer: {
    title: "call.transfer",
    inputs: [["target", "call.queue", "select"]],
    request: (v) => ["transfer", v.target.startsWith("teller:") ? { teller: v.target.slice(7) } : { queue: v.target }],
  },
};

export class ActionPanel {
  /** submit(path, body) posts to sessions/<id>/<path>; queues: [[code, name]] for transfer. */
  constructor(el, submit, queues = []) {
    this.el = el;
    this.submit = submit;
    this.queues = queues;
    this.opener = null;
  }

  open(name, opener) {
    const spec = ACTIONS[name];
    this.opener = opener;
    const values = {};
    const inputs = spec.inputs.map(([key, labelKey, kind]) => {
      const id = `action-${key}`;
      let input;
      if (kind === "textarea") input = h("textarea", { id, testid: `action-${key}`, rows: "3", maxlength: "2000", required: true });
      else if (kind === "select") {
        input = h("select", { id, testid: `action-${key}`, required: true },
          this.queues.map(([code, nameText]) => h("option", { value: code }, nameText)));
      } else input = h("input", { id, testid: `action-${key}`, maxlength: "500", required: true });
      values[key] = input;
      return h("label", { class: "field", for: id }, h("span", {}, t(labelKey)), input);
    });
    const error = h("p", { class: "form-error", testid: "action-error", role: "alert" });
    const send = h("button", { type: "submit", class: "primary", testid: "action-send" }, t("call.send"));
    const cancel = h("button", { type: "button", testid: "action-cancel", onclick: () => this.close() }, t("call.cancel"));
    const form = h("form", { class: "card action", testid: "action-panel", "data-action": name, novalidate: true,
      "aria-labelledby": "action-heading" }, h("h2", { id: "action-heading" }, t(spec.title)), inputs, error,
    h("div", { class: "actions" }, send, cancel));
    form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") this.close(); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const v = Object.fromEntries(Object.entries(values).map(([k, el]) => [k, el.value.trim()]));
      if (Object.values(v).some((x) => !x)) { error.textContent = t("call.incomplete"); return; }
      const [path, body] = spec.request(v);
      send.disabled = true;
      try {
        await this.submit(path, body, name);
        this.close();
      } catch (err) {
        error.textContent = t("error.generic", { message: err.message });
      } finally {
        send.disabled = false;
      }
    });
    fill(this.el, form);
    inputs[0].querySelector("input, textarea, select").focus();
  }

  close() {
    this.el.replaceChildren();
    if (this.opener) this.opener.focus();
    this.opener = null;
  }
}
