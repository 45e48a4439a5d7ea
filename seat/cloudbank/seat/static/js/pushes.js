// The call's pushes and what the customer answered: each form, document or signature request the
// teller sent, named by its title, with the answer once it comes (accepted or declined, the form's
// values by their labels, the signature image fetched with the teller's token). Kept for the rest
// of the call; a reloaded console lists them again from the platform (GET sessions/<id>/pushes).
import { h, clock } from "./dom.js";
import { t } from "./i18n.js";

const KIND = { form: "pushes.kind_form", document: "pushes.kind_document", signature_request: "pushes.kind_signature" };

/** The words for an answer: a signature is "signed", a form "confirmed", a decline always "declined". */
function answerText(push) {
  if (push.state !== "answered") return t("pushes.pending");
  if (push.answer === "decline") return t("pushes.declined");
  return t(push.kind === "signature_request" ? "pushes.signed" : push.kind === "form" ? "pushes.confirmed"
    : "pushes.accepted");
}

function valueText(field, value) {
  if (field && field.kind === "checkbox") return t(value === "true" || value === "on" ? "pushes.yes" : "pushes.no");
  return value === "" ? t("pushes.blank") : value;
}

export class PushAnswers {
  /** api: the Api; startedAt: the call's start (epoch s) for the times shown; onError(message). */
  constructor(api, { startedAt = Date.now() / 1000, onError = () => {} } = {}) {
    this.api = api;
    this.startedAt = startedAt;
    this.onError = onError;
    this.items = new Map();   // push id -> {push, li}
    this.urls = new Set();
    this.destroyed = false;
    this.list = h("ul", { class: "pushes", testid: "pushes" });
    // Shown from the first push on: an empty card would only push the transcript down.
    this.el = h("section", { class: "card pushes-card", "aria-labelledby": "pushes-title", hidden: true },
      h("h2", { id: "pushes-title" }, t("pushes.title")), this.list);
  }

  /** Everything the session has pushed so far, with the answers (after a reload). */
  async load(sessionId) {
    try {
      const reply = await this.api.get(`sessions/${encodeURIComponent(sessionId)}/pushes`);
      for (const push of reply.pushes || []) this.show(push);
    } catch (err) {
      this.onError(err.message);
    }
  }

  /** The title of a push this screen knows, else null (never the raw id). */
  title(pushId) {
    const item = this.items.get(pushId);
    return item ? item.push.title : null;
  }

  /** A push as the platform returned it when sent, or listed. */
  show(push) {
    if (!push || !push.push_id || this.destroyed) return;
    const known = this.items.get(push.push_id);
    const merged = known ? { ...known.push, ...push } : push;
    const li = this.render(merged);
    if (known) known.li.replaceWith(li);
    else this.list.prepend(li);   // newest first, next to where the teller looks
    this.items.set(push.push_id, { push: merged, li });
    this.el.hidden = false;
  }

  /** A `push.response` event: the push is answered. */
  answered(ev) {
    this.show({ ...ev, state: "answered" });
  }

  render(push) {
    const answered = push.state === "answered";
    const state = answered ? push.answer : "pending";
    const at = answered && push.answered_at ? push.answered_at : push.at;
    const li = h("li", { class: `push push-${state}`, testid: "push-item", "data-push-id": push.push_id,
      "data-state": state, "data-kind": push.kind },
    h("div", { class: "push-head" },
      h("span", { class: "push-kind" }, t(KIND[push.kind] || "pushes.kind_form")), " ",
      h("strong", { testid: "push-title" }, push.title || ""),
      at ? h("time", { class: "at" }, clock(at - this.startedAt)) : null),
    h("p", { class: `push-answer answer-${state}`, testid: "push-answer" }, answerText(push)));
    if (answered && push.answer === "accept" && push.kind === "form") {
      const fields = new Map((push.fields || []).map((f) => [f.name, f]));
      const values = push.values || {};
      const names = [...fields.keys(), ...Object.keys(values).filter((n) => !fields.has(n))];
      const dl = h("dl", { class: "push-values", testid: "push-values" });
      for (const name of names) {
        const field = fields.get(name);
        dl.append(h("dt", {}, field ? field.label || name : name),
          h("dd", { "data-field": name }, valueText(field, name in values ? String(values[name]) : "")));
      }
      li.append(dl);
    }
    if (answered && push.signature_url) li.append(this.signature(push));
    return li;
  }

  signature(push) {
    const img = h("img", { class: "signature", testid: "push-signature", alt: t("pushes.signature_alt", { title: push.title }),
      "data-sha256": push.signature_sha256 || "" });
    const url = push.signature_url.startsWith("/api/") ? this.api.url(push.signature_url.slice(5)) : push.signature_url;
    this.api.blob(url).then((blob) => {
      if (this.destroyed) return;
      const src = URL.createObjectURL(blob);
      this.urls.add(src);
      img.src = src;
    }).catch((err) => this.onError(err.message));
    return img;
  }

  destroy() {
    this.destroyed = true;
    for (const src of this.urls) URL.revokeObjectURL(src);
  }
}
