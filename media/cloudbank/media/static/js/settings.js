// Retention: how many days recordings are kept (0 keeps them forever), and the purge run on demand.
import { h, fill, when } from "./dom.js";
import { t } from "./i18n.js";

export function renderSettings(root, ctx) {
  const days = h("input", { id: "retention-days", testid: "retention-days", type: "number", min: "0", max: "36500", step: "1" });
  const info = h("p", { class: "muted", testid: "retention-info" });
  const result = h("p", { testid: "purge-result", role: "status" });
  // The first load may answer after an admin has already typed or saved: it must not overwrite that.
  let saves = 0;
  let edited = false;
  days.addEventListener("input", () => { edited = true; });
  const form = h("form", { class: "card row", testid: "retention-form" },
    h("label", { class: "field", for: "retention-days" }, h("span", {}, t("settings.retention")), days),
    h("button", { type: "submit", class: "primary", testid: "retention-save" }, t("settings.save")), info);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      saves += 1;
      const { settings } = await ctx.media.put("settings", { retention_days: Number.parseInt(days.value, 10) });
      show(settings);
      ctx.notify(t("settings.saved"), "info");
    } catch (err) { ctx.fail(err); }
  });
  const purge = h("button", { type: "button", testid: "purge-now", onclick: async () => {
    try {
      const { purged } = await ctx.media.post("retention/purge");
      result.textContent = t("settings.purged", { count: purged.length });
    } catch (err) { ctx.fail(err); }
  } }, t("settings.purge"));

  function show(settings, keepInput = false) {
    if (!keepInput) days.value = String(settings.retention_days);
    info.textContent = settings.retention_days === 0 ? t("settings.forever")
      : t("settings.keeping", { days: settings.retention_days, when: when(settings.updated_at) });
  }

  fill(root, h("h2", {}, t("tab.settings")), form, h("section", { class: "card" }, h("p", {}, t("settings.purge_hint")), purge, result));
  ctx.media.get("settings").then(({ settings }) => { if (saves === 0) show(settings, edited); }, (err) => ctx.fail(err));
}
