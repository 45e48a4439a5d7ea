// Recordings: search by session, teller, service and date; view a call's manifest, play its
// segments, verify its hashes against the manifest and the audit chain, export it as a zip.
// Every one of these accesses is recorded in the audit chain by the server.
import { h, fill, bytes, when } from "./dom.js";
import { t } from "./i18n.js";

export function renderRecordings(root, ctx) {
  const inputs = {};
  const fields = ["session", "teller", "service", "from", "to"].map((name) => {
    const id = `rec-${name}`;
    inputs[name] = h("input", { id, testid: `search-${name}`, maxlength: "64",
      type: name === "from" || name === "to" ? "date" : "text" });
    return h("label", { class: "field", for: id }, h("span", {}, t(`recordings.${name}`)), inputs[name]);
  });
  const results = h("div", { testid: "recording-results" });
  const detail = h("div", { class: "detail", testid: "recording-detail" });
  const form = h("form", { class: "card row", testid: "recording-search" }, fields,
    h("button", { type: "submit", class: "primary", testid: "search-submit" }, t("recordings.search")),
    ctx.auth.role === "admin" ? h("button", { type: "button", testid: "rescan", onclick: rescan }, t("recordings.rescan")) : null);

  async function rescan() {
    try {
      const body = await ctx.media.post("recordings/scan");
      ctx.notify(t("recordings.scanned", { count: body.indexed.length }), "info");
      await search();
    } catch (err) { ctx.fail(err); }
  }

  async function search(ev) {
    if (ev) ev.preventDefault();
    const query = {};
    for (const [k, el] of Object.entries(inputs)) if (el.value.trim()) query[k] = el.value.trim();
    try {
      const { recordings } = await ctx.media.get("recordings", query);
      fill(results, recordings.length === 0 ? h("p", { testid: "recording-empty" }, t("recordings.none")) :
        h("table", { class: "grid" },
          h("thead", {}, h("tr", {}, ["session", "started", "service", "teller", "size", "state", ""].map((k) =>
            h("th", {}, k ? t(`recordings.${k}`) : "")))),
          h("tbody", {}, recordings.map((r) => h("tr", { testid: `recording-${r.session_id}`, "data-state": r.state },
            h("td", {}, r.session_id), h("td", {}, when(r.started_at)), h("td", {}, r.service || "—"),
            h("td", { title: r.teller_id || "" }, r.teller_name || r.teller_id || "—"), h("td", {}, bytes(r.bytes)), h("td", {}, t(`state.${r.state}`)),
            h("td", {}, r.state === "available" ? h("button", { type: "button", testid: "recording-open",
              onclick: () => open(r.session_id) }, t("recordings.open")) : null))))));
    } catch (err) { ctx.fail(err); }
  }

  async function open(sessionId) {
    try {
      const { recording, manifest } = await ctx.media.get(`recordings/${encodeURIComponent(sessionId)}`);
      const report = h("div", { testid: "verify-report" });
      const player = h("div", { class: "player", testid: "player" });
      const files = [];
      for (const track of manifest.tracks || []) {
        for (const seg of track.segments || []) files.push({ label: `${track.party} ${track.kind}`, path: seg.path, bytes: seg.bytes });
      }
      for (const tr of manifest.transcripts || []) files.push({ label: t("recordings.transcript"), path: tr.path });
      const fileName = (path) => path.split("/").pop();
      const play = (f) => {
        const src = ctx.media.url(`recordings/${encodeURIComponent(sessionId)}/files/${encodeURIComponent(fileName(f.path))}`,
          { token: ctx.auth.token });
        fill(player, /\.(webm|mkv)$/.test(f.path) ? h("video", { src, controls: true, testid: "segment-video" })
          : h("a", { href: src, target: "_blank", rel: "noopener", testid: "file-link" }, fileName(f.path)));
      };
      fill(detail, h("section", { class: "card" },
        h("h3", {}, t("recordings.detail", { session: sessionId })),
        h("p", { class: "muted" }, `${when(manifest.started_at)} – ${when(manifest.ended_at)} · ${recording.service || "—"} · `
          + Object.entries(manifest.parties || {}).map(([p, id]) => `${p}: ${id}`).join(", ")),
        h("ul", { class: "files", testid: "recording-files" }, files.map((f) => h("li", {},
          h("button", { type: "button", testid: `play-${fileName(f.path)}`, onclick: () => play(f) }, t("recordings.play")),
          ` ${f.label} — ${fileName(f.path)}${f.bytes ? ` (${bytes(f.bytes)})` : ""}`))),
        player,
        h("div", { class: "row" },
          h("button", { type: "button", class: "primary", testid: "verify-recording", onclick: async () => {
            try {
              const { report: r } = await ctx.media.post(`recordings/${encodeURIComponent(sessionId)}/verify`);
              fill(report, h("p", { class: r.ok ? "ok" : "bad", testid: "verify-result", "data-ok": String(r.ok) },
                r.ok ? t("recordings.verified_ok", { count: r.files.length }) : t("recordings.verified_bad")),
              h("ul", {}, r.problems.map((p) => h("li", { class: "bad" }, p))));
            } catch (err) { ctx.fail(err); }
          } }, t("recordings.verify")),
          ctx.auth.role === "admin" ? h("button", { type: "button", testid: "export-recording", onclick: async () => {
            try {
              const url = await ctx.media.objectUrl(`recordings/${encodeURIComponent(sessionId)}/export`);
              const a = h("a", { href: url, download: `recording-${sessionId}.zip`, testid: "export-link" }, t("recordings.download"));
              fill(report, a);
              a.click();
            } catch (err) { ctx.fail(err); }
          } }, t("recordings.export")) : null),
        report));
    } catch (err) { ctx.fail(err); }
  }

  form.addEventListener("submit", search);
  fill(root, h("h2", {}, t("tab.recordings")), form, results, detail);
  search();
}
