// Kiosks and their last heartbeat (the platform's GET /api/devices): online, camera, mic, peripherals.
import { h, fill, when } from "./dom.js";
import { t } from "./i18n.js";

export function renderDevices(root, ctx) {
  const table = h("div", { testid: "device-list" });
  const ok = (value) => h("span", { class: value ? "ok" : "bad" }, value ? t("devices.ok") : t("devices.fault"));

  async function refresh() {
    try {
      const { devices } = await ctx.platform.get("devices");
      const now = Date.now() / 1000;
      fill(table, devices.length === 0 ? h("p", { testid: "device-empty" }, t("devices.none")) :
        h("table", { class: "grid" },
          h("thead", {}, h("tr", {}, ["name", "branch", "status", "camera", "microphone", "peripherals", "version", "seen"]
            .map((k) => h("th", {}, t(`devices.${k}`))))),
          h("tbody", {}, devices.map((d) => {
            const s = d.status || {};
            const fresh = d.last_seen && now - d.last_seen < ctx.config.heartbeat_stale_s;
            const status = d.revoked ? "revoked" : fresh && s.online ? "online" : "offline";
            return h("tr", { testid: `device-${d.id}`, "data-status": status },
              h("td", {}, d.name), h("td", {}, d.branch_id),
              h("td", { testid: "device-status" }, h("span", { class: status === "online" ? "ok" : "bad" }, t(`devices.${status}`))),
              h("td", {}, d.last_seen ? ok(s.camera_ok) : "—"), h("td", {}, d.last_seen ? ok(s.microphone_ok) : "—"),
              h("td", {}, d.last_seen ? ok(s.peripherals_ok) : "—"), h("td", {}, s.app_version || "—"),
              h("td", {}, when(d.last_seen)));
          }))));
    } catch (err) { ctx.fail(err); }
  }

  fill(root, h("h2", {}, t("tab.devices")),
    h("button", { type: "button", testid: "devices-refresh", onclick: refresh }, t("devices.refresh")), table);
  refresh();
}
