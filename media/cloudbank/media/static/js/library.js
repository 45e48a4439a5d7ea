// The media library: upload a file (type checked by the server from its content) with a progress
// bar, see every item, delete one (the server refuses while a playlist uses it and says which).
import { h, fill, bytes, when } from "./dom.js";
import { t } from "./i18n.js";

export function renderLibrary(root, ctx) {
  const file = h("input", { type: "file", id: "upload-file", testid: "upload-file",
    accept: "video/mp4,video/webm,image/png,image/jpeg,application/pdf" });
  const status = h("p", { class: "status", testid: "upload-status", role: "status" });
  const progress = h("progress", { max: "100", value: "0", testid: "upload-progress", hidden: true,
    "aria-label": t("library.progress") });
  const submit = h("button", { type: "submit", class: "primary", testid: "upload-submit" }, t("library.upload"));
  const list = h("div", { class: "items", testid: "item-list" });
  const preview = h("div", { class: "preview", testid: "item-preview" });

  const form = h("form", { class: "card row", testid: "upload-form" },
    h("label", { class: "field", for: "upload-file" }, h("span", {}, t("library.file")), file),
    submit, progress, status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = file.files[0];
    if (!chosen) { status.textContent = t("library.choose"); return; }
    submit.disabled = true;
    ctx.notify("");  // an earlier refusal no longer applies to this upload
    status.textContent = t("library.uploading", { name: chosen.name });
    progress.hidden = false;
    progress.value = 0;
    try {
      const body = await ctx.media.upload("items", {
        query: { name: chosen.name }, body: chosen,
        headers: { "Content-Type": chosen.type || "application/octet-stream", Accept: "application/json" },
        onProgress: (sent, total) => {
          progress.value = total ? Math.round((100 * sent) / total) : 0;
          progress.dataset.percent = String(progress.value);
        },
      });
      progress.value = 100;
      progress.dataset.percent = "100";
      status.textContent = body.deduplicated ? t("library.duplicate", { name: body.item.name })
        : t("library.uploaded", { name: body.item.name });
      file.value = "";
      await refresh();
    } catch (err) {
      status.textContent = "";
      ctx.fail(err);
    } finally {
      submit.disabled = false;
      setTimeout(() => { progress.hidden = true; }, 1500);
    }
  });

  function askDelete(item, cell) {
    fill(cell, h("span", { class: "hint" }, t("library.delete_confirm", { name: item.name })), " ",
      h("button", { type: "button", class: "danger", testid: "item-delete-confirm", onclick: async () => {
        try {
          await ctx.media.del(`items/${encodeURIComponent(item.id)}`);
          ctx.notify(t("library.deleted", { name: item.name }), "info");
          fill(preview);
          await refresh();
        } catch (err) {
          ctx.fail(err);
          await refresh();
        }
      } }, t("library.delete_yes")), " ",
      h("button", { type: "button", testid: "item-delete-cancel", onclick: () => refresh() }, t("library.cancel")));
  }

  async function showPreview(item) {
    try {
      const url = await ctx.media.objectUrl(`blobs/${item.sha256}`);
      const el = item.kind === "image" ? h("img", { src: url, alt: item.name, testid: "preview-image" })
        : item.kind === "video" ? h("video", { src: url, controls: true, testid: "preview-video" })
          : h("a", { href: url, download: item.name, testid: "preview-download" }, t("library.download"));
      fill(preview, h("h3", {}, item.name), el);
    } catch (err) { ctx.fail(err); }
  }

  async function refresh() {
    try {
      const { items } = await ctx.media.get("items");
      fill(list, items.length === 0 ? h("p", { testid: "item-empty" }, t("library.empty")) :
        h("table", { class: "grid" },
          h("thead", {}, h("tr", {}, ["name", "kind", "size", "uploaded_at", ""].map((k) => h("th", {}, k ? t(`library.${k}`) : "")))),
          h("tbody", {}, items.map((item) => h("tr", { testid: `item-${item.id}`, "data-name": item.name },
            h("td", { testid: "item-name" }, item.name),
            h("td", {}, t(`kind.${item.kind}`)),
            h("td", {}, bytes(item.size)),
            h("td", {}, when(item.created_at)),
            h("td", { class: "actions" }, h("button", { type: "button", testid: "item-preview-button", onclick: () => showPreview(item) },
              t("library.preview")), " ",
            h("button", { type: "button", testid: "item-delete", "aria-label": t("library.delete_named", { name: item.name }),
              onclick: (ev) => askDelete(item, ev.target.closest("td")) }, t("library.delete"))))))));
    } catch (err) { ctx.fail(err); }
  }

  fill(root, h("h2", {}, t("tab.library")), form, list, preview);
  refresh();
}
