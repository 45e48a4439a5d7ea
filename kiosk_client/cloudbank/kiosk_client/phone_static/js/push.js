// Shows what a teller pushes (a form, a document, a signature request) and resolves with the
// customer's answer as the platform takes it: { answer: "accept" | "decline", values?, signature? }.

import { SignaturePad } from "./signature.js";
import { say, t } from "./i18n.js";

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

// Form fields the teller sent ({name, label, kind, required, value, options}); the customer may edit
// them before accepting. Returns the element and a function reading the values.
function formFields(fields) {
  const box = el("div", { "data-testid": "push-fields", class: "fields" });
  const inputs = [];
  for (const f of fields || []) {
    const label = el("label", {}, `${f.label || f.name}${f.required ? " *" : ""}`);
    let input;
    if (f.kind === "select") {
      input = el("select", {});
      for (const o of f.options || []) input.append(el("option", { value: o }, o));
      if (f.value) input.value = f.value;
    } else if (f.kind === "checkbox") {
      input = el("input", { type: "checkbox" });
      input.checked = f.value === "true";
    } else {
      input = el("input", { type: f.kind === "number" ? "number" : f.kind === "date" ? "date" : "text", maxlength: "2000" });
      input.value = f.value || "";
    }
    input.dataset.testid = `push-field-${f.name}`;
    label.append(input);
    box.append(label);
    inputs.push([f, input]);
  }
  const read = () => {
    const values = {};
    for (const [f, input] of inputs) {
      const v = f.kind === "checkbox" ? (input.checked ? "true" : "") : input.value.trim();
      if (f.required && !v) throw new Error(t("push.fill_in", { field: f.label || f.name }));
      if (v) values[f.name] = v;
    }
    return values;
  };
  return [box, read];
}

// Renders `push` into `container` and resolves with the answer when a button is pressed.
export function showPush(container, push) {
  container.replaceChildren();
  container.hidden = false;
  const card = el("section", { class: "push", "data-testid": "push", "data-kind": push.kind || "" });
  const title = el("h2", { "data-testid": "push-title" }, push.title);
  if (!push.title) say(title, "push.from_teller");
  card.append(title);
  let pad = null;
  if (push.kind === "document" && push.url) {
    const link = el("a", { href: push.url, target: "_blank", rel: "noopener", "data-testid": "push-document" });
    card.append(say(link, "push.open_document"));
  }
  if (push.text) card.append(el("p", { "data-testid": "push-text" }, push.text));
  let readValues = null;
  if (push.kind === "form") {
    const [box, read] = formFields(push.fields);
    card.append(box);
    readValues = read;
  }
  if (push.kind === "signature_request") {
    const canvas = el("canvas", { width: "480", height: "180", class: "signature", "data-testid": "signature-pad" });
    card.append(say(el("p", {}), "push.sign_here"), canvas);
    pad = new SignaturePad(canvas);
    const clear = say(el("button", { type: "button", "data-testid": "signature-clear", class: "secondary" }), "push.clear");
    clear.addEventListener("click", () => pad.clear());
    card.append(clear);
  }
  const error = el("p", { class: "error", "data-testid": "push-error", role: "alert" });
  const actions = el("div", { class: "actions" });
  const confirmLabel = push.kind === "document" ? "push.read" : push.kind === "signature_request" ? "push.sign" : "push.confirm";
  const confirm = say(el("button", { type: "button", "data-testid": "push-confirm" }), confirmLabel);
  const decline = say(el("button", { type: "button", "data-testid": "push-decline", class: "secondary" }), "push.decline");
  actions.append(confirm, decline);
  card.append(error, actions);
  container.append(card);
  return new Promise((resolve) => {
    confirm.addEventListener("click", () => {
      const answer = { answer: "accept" };
      try {
        if (readValues) answer.values = readValues();
        if (pad) {
          if (pad.empty) throw new Error(t("push.sign_first"));
          answer.signature = pad.dataUrl();
        }
      } catch (err) { error.textContent = err.message; return; }
      resolve(answer);
    });
    decline.addEventListener("click", () => resolve({ answer: "decline" }));
  });
}
