// Service definitions (form template, dual-recording checklist, keywords) under maker-checker: an
// admin edits a draft and submits it; another admin sees what changed against the version in force
// and approves or rejects it with a reason. The server decides (it refuses the maker's own approval).
import { ApiError } from "./api.js";
import { h, fill, when } from "./dom.js";
import { t } from "./i18n.js";

const KINDS = ["text", "number", "date", "checkbox", "select"];
const EMPTY = { title: "", fields: [], script: [], authorisation: "never", authorisation_field: "",
  authorisation_above: 0, signature: false, keywords: [] };

/** Lines saying what `after` changes in `before` (null: a first version). */
export function definitionDiff(before, after) {
  const b = before || EMPTY;
  const out = [];
  if (b.title !== after.title) out.push(["title", t("services.diff_title", { before: b.title || "—", after: after.title })]);
  const keyed = (list, key) => new Map(list.map((x) => [x[key], x]));
  for (const [label, list, key] of [["field", "fields", "name"], ["item", "script", "id"]]) {
    const was = keyed(b[list], key);
    const now = keyed(after[list], key);
    for (const [k, v] of now) {
      if (!was.has(k)) out.push([`${label}-added`, t(`services.diff_${label}_added`, { name: k, text: v.label || v.phrase || "" })]);
      else if (JSON.stringify(was.get(k)) !== JSON.stringify(v)) {
        const old = was.get(k);
        const parts = Object.keys(v).filter((p) => JSON.stringify(old[p]) !== JSON.stringify(v[p]))
          .map((p) => `${p}: ${JSON.stringify(old[p])} → ${JSON.stringify(v[p])}`);
        out.push([`${label}-changed`, t(`services.diff_${label}_changed`, { name: k, changes: parts.join("; ") })]);
      }
    }
    for (const k of was.keys()) if (!now.has(k)) out.push([`${label}-removed`, t(`services.diff_${label}_removed`, { name: k })]);
    const order = (m) => [...m.keys()].filter((k) => now.has(k) && was.has(k)).join(",");
    if (order(was) !== order(now)) out.push([`${label}-order`, t(`services.diff_${label}_order`)]);
  }
  const added = after.keywords.filter((k) => !b.keywords.includes(k));
  const removed = b.keywords.filter((k) => !after.keywords.includes(k));
  if (added.length || removed.length) out.push(["keywords", t("services.diff_keywords", { added: added.join(", ") || "—", removed: removed.join(", ") || "—" })]);
  for (const p of ["authorisation", "authorisation_field", "authorisation_above", "signature"]) {
    if (JSON.stringify(b[p]) !== JSON.stringify(after[p])) out.push([p, `${p}: ${JSON.stringify(b[p])} → ${JSON.stringify(after[p])}`]);
  }
  return out;
}

export function renderServices(root, ctx) {
  const me = ctx.auth.user.id;
  const listEl = h("div", { class: "services", testid: "service-list" });
  const editorEl = h("div", { testid: "service-editor-slot" });
  let alive = true;

  function inForce(versions) {
    const approved = versions.filter((v) => v.state === "approved");
    return approved.length ? approved[approved.length - 1] : null;
  }

  function openEditor(service, base) {
    const draft = structuredClone(base ? base.definition : { ...EMPTY, title: service.name });
    const errorEl = h("p", { class: "error", testid: "service-error", role: "alert", hidden: true });
    const fieldsEl = h("ol", { class: "def-fields", testid: "draft-fields" });
    const scriptEl = h("ol", { class: "def-script", testid: "draft-script" });
    const title = h("input", { id: "sv-title", testid: "draft-title", maxlength: "200", value: draft.title,
      "data-field": "definition.title", oninput: (ev) => { draft.title = ev.target.value; } });
    const keywords = h("textarea", { id: "sv-keywords", testid: "draft-keywords", rows: "3", "data-field": "definition.keywords",
      oninput: (ev) => { draft.keywords = ev.target.value.split("\n").map((s) => s.trim()).filter(Boolean); } });
    keywords.value = draft.keywords.join("\n");
    const errorSlot = (field) => h("p", { class: "error field-error", testid: `error-${field}`, role: "alert", hidden: true });

    function input(testid, label, obj, key, attrs = {}) {
      return h("label", { class: "field" }, h("span", {}, label),
        h("input", { testid, maxlength: "200", value: obj[key] ?? "", "aria-label": label, ...attrs,
          oninput: (ev) => { obj[key] = ev.target.value; } }));
    }
    function check(testid, label, obj, key) {
      return h("label", { class: "check" }, h("input", { type: "checkbox", testid, checked: obj[key],
        "aria-label": label, onchange: (ev) => { obj[key] = ev.target.checked; } }), label);
    }
    function renderFields() {
      fill(fieldsEl, draft.fields.map((f, i) => h("li", { testid: `draft-field-${i}`, "data-field": `definition.fields.${f.name}` },
        h("div", { class: "row" },
          input(`draft-field-name-${i}`, t("services.field_name"), f, "name", { maxlength: "64" }),
          input(`draft-field-label-${i}`, t("services.field_label"), f, "label"),
          h("label", { class: "field" }, h("span", {}, t("services.field_kind")),
            h("select", { testid: `draft-field-kind-${i}`, "aria-label": t("services.field_kind"),
              onchange: (ev) => { f.kind = ev.target.value; } },
            KINDS.map((k) => h("option", { value: k, selected: k === f.kind }, t(`services.kind_${k}`))))),
          check(`draft-field-required-${i}`, t("services.required"), f, "required"),
          check(`draft-field-confirm-${i}`, t("services.confirm"), f, "confirm"),
          h("button", { type: "button", testid: `draft-field-remove-${i}`, "aria-label": t("services.remove_named", { name: f.name }),
            onclick: () => { draft.fields.splice(i, 1); renderFields(); } }, t("services.remove"))),
        errorSlot(`definition.fields.${f.name}`))));
    }
    function renderScript() {
      fill(scriptEl, draft.script.map((item, i) => h("li", { testid: `draft-item-${i}`, "data-field": `definition.script.${item.id}` },
        h("div", { class: "row" },
          input(`draft-item-id-${i}`, t("services.item_id"), item, "id", { maxlength: "64" }),
          h("label", { class: "field" }, h("span", {}, t("services.item_kind")),
            h("select", { testid: `draft-item-kind-${i}`, "aria-label": t("services.item_kind"),
              onchange: (ev) => { item.kind = ev.target.value; } },
            ["say", "answer"].map((k) => h("option", { value: k, selected: k === item.kind }, t(`services.item_${k}`))))),
          input(`draft-item-phrase-${i}`, t("services.item_phrase"), item, "phrase"),
          input(`draft-item-label-${i}`, t("services.item_label"), item, "label"),
          h("button", { type: "button", testid: `draft-item-remove-${i}`, "aria-label": t("services.remove_named", { name: item.id }),
            onclick: () => { draft.script.splice(i, 1); renderScript(); } }, t("services.remove"))),
        errorSlot(`definition.script.${item.id}`))));
    }
    function showError(err) {
      renderFields();  // the rows' error slots named for the names and ids as typed now
      renderScript();
      for (const el of editorEl.querySelectorAll(".error")) { el.hidden = true; el.textContent = ""; }
      const field = err instanceof ApiError ? err.body.field || "" : "";
      // The most specific slot for the server's field, else the form's own.
      let slot = null;
      for (let f = field; f && !slot; f = f.includes(".") ? f.slice(0, f.lastIndexOf(".")) : "") {
        slot = [...editorEl.querySelectorAll(".field-error")].find((el) => el.dataset.testid === `error-${f}`) || null;
      }
      const target = slot || errorEl;
      target.textContent = err instanceof ApiError ? err.message : t("error.network");
      target.hidden = false;
      target.scrollIntoView({ block: "center" });
    }
    const submit = h("button", { type: "submit", class: "primary", testid: "draft-submit" }, t("services.submit"));
    const form = h("form", { class: "card", testid: "service-editor", "data-service": service.code },
      h("h3", {}, t("services.editing", { name: service.name, version: base ? base.version : "—" })), errorEl,
      h("label", { class: "field", for: "sv-title" }, h("span", {}, t("services.title")), title),
      errorSlot("definition.title"),
      h("h4", {}, t("services.fields")), fieldsEl, errorSlot("definition.fields"),
      h("button", { type: "button", testid: "draft-add-field", onclick: () => {
        draft.fields.push({ name: `field_${draft.fields.length + 1}`, label: "", kind: "text", required: false, confirm: false });
        renderFields(); } }, t("services.add_field")),
      h("h4", {}, t("services.script")), h("p", { class: "hint" }, t("services.script_hint")), scriptEl,
      errorSlot("definition.script"),
      h("button", { type: "button", testid: "draft-add-item", onclick: () => {
        draft.script.push({ id: `item_${draft.script.length + 1}`, kind: "say", phrase: "", label: "" });
        renderScript(); } }, t("services.add_item")),
      h("label", { class: "field", for: "sv-keywords" }, h("span", {}, t("services.keywords")), keywords),
      errorSlot("definition.keywords"),
      h("div", { class: "row" }, submit,
        h("button", { type: "button", testid: "draft-cancel", onclick: () => fill(editorEl) }, t("services.cancel"))));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      try {
        await ctx.platform.post(`services/${service.code}/definitions`, { definition: draft });
        fill(editorEl);
        ctx.notify(t("services.submitted"), "info");
        await refresh();
      } catch (err) {
        showError(err);
      } finally { submit.disabled = false; }
    });
    renderFields();
    renderScript();
    fill(editorEl, form);
    title.focus();
  }

  function review(service, version, before) {
    const mine = version.made_by === me;
    const errorEl = h("p", { class: "error", testid: "service-decision-error", role: "alert", hidden: true });
    const reason = h("input", { testid: "service-reject-reason", maxlength: "500", "aria-label": t("services.reason"),
      placeholder: t("services.reason") });
    async function decide(action) {
      errorEl.hidden = true;
      try {
        await ctx.platform.post(`services/${service.code}/definitions/${version.version}/${action}`,
          action === "reject" ? { reason: reason.value.trim() } : {});
        ctx.notify(t(`services.${action}d_msg`, { version: version.version }), "info");
        await refresh();
      } catch (err) {
        errorEl.textContent = err instanceof ApiError ? err.message : t("error.network");
        errorEl.hidden = false;
      }
    }
    const diff = definitionDiff(before ? before.definition : null, version.definition);
    return h("div", { class: "review", testid: "service-review" },
      h("p", { class: "muted" }, t("services.made_by", { version: version.version,
        who: mine ? t("services.you") : t("services.other_admin"), when: when(version.made_at) })),
      h("h4", {}, before ? t("services.changes", { version: before.version }) : t("services.first")),
      h("ul", { class: "diff", testid: "service-diff" }, diff.length ? diff.map(([kind, text]) =>
        h("li", { "data-kind": kind }, text)) : h("li", {}, t("services.no_change"))),
      mine ? h("p", { class: "hint", testid: "own-change" }, t("services.own_change")) : null,
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", testid: "service-approve", onclick: () => decide("approve") },
          t("services.approve")),
        reason,
        h("button", { type: "button", testid: "service-reject", onclick: () => decide("reject") }, t("services.reject"))),
      errorEl);
  }

  async function refresh() {
    try {
      const { services } = await ctx.platform.get("services");
      const rows = await Promise.all(services.map(async (s) =>
        [s, (await ctx.platform.get(`services/${s.code}/definitions`)).versions]));
      if (!alive) return;
      fill(listEl, rows.map(([s, versions]) => {
        const current = inForce(versions);
        const latest = versions[versions.length - 1] || null;
        const pending = latest && latest.state === "pending" ? latest : null;
        return h("section", { class: "card", testid: `service-${s.code}`, "data-approved": current ? current.version : "",
          "data-state": latest ? latest.state : "none" },
        h("h3", {}, `${s.name} — ${s.code}`),
        h("p", { testid: "service-status" }, current ? t("services.in_force", { version: current.version }) : t("services.none_in_force"),
          " ", latest && latest !== current ? h("span", { class: "badge", testid: "service-latest" },
            t("services.latest", { version: latest.version, state: t(`state.${latest.state}`) })) : null,
          latest && latest.state === "rejected" && latest.reason ? h("span", { class: "muted", testid: "service-reason" },
            ` ${t("services.rejected_because", { reason: latest.reason })}`) : null),
        pending ? review(s, pending, current) :
          h("button", { type: "button", testid: "service-edit", onclick: () => openEditor(s, current || latest) },
            current ? t("services.edit") : t("services.create")));
      }));
    } catch (err) { ctx.fail(err); }
  }

  fill(root, h("h2", {}, t("tab.services")), editorEl, listEl);
  refresh();
  return () => { alive = false; };
}
