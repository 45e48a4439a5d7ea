// Recordings: search by session, teller (name, username or id), service and date; open a call in
// one player (call_player.js) with its transcript, verify its hashes against the manifest and the
// audit chain (intact, incomplete: a party's tracks missing, or tampered), export it as a zip.
// Every one of these accesses is recorded in the audit chain by the server. Calls appear here as
// they finish (the media platform indexes them then); "Rescan" is only for files copied in by hand.
import { h, fill, bytes, when } from "./dom.js";
import { t } from "./i18n.js";
import { renderCallPlayer, parseTranscript } from "./call_player.js";

/** "Teller's video missing" for each "<party> <kind>" a recording lacks. */
export function missingText(missing) {
  return (missing || []).map((m) => {
    const [party, kind] = m.split(" ");
    return t(`recordings.missing_${kind}`, { party: t(`party.${party}`) });
  });
}

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
  let player = null;
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
        h("div", { class: "scroll-x" }, h("table", { class: "grid" },
          h("thead", {}, h("tr", {}, ["session", "started", "service", "teller", "size", "state", ""].map((k) =>
            h("th", {}, k ? t(`recordings.${k}`) : "")))),
          h("tbody", {}, recordings.map((r) => h("tr", { testid: `recording-${r.session_id}`, "data-state": r.state },
            h("td", {}, r.session_id), h("td", {}, when(r.started_at)), h("td", {}, r.service || "—"),
            h("td", { title: r.teller_id || "" }, r.teller_name || r.teller_id || "—"), h("td", {}, bytes(r.bytes)),
            h("td", {}, t(`state.${r.state}`), (r.missing || []).length && r.state === "available"
              ? h("div", { class: "bad", testid: "recording-missing" }, missingText(r.missing).join(" · ")) : null),
            h("td", {}, r.state === "available" ? h("button", { type: "button", testid: "recording-open",
              onclick: () => open(r.session_id) }, t("recordings.open")) : null)))))));
    } catch (err) { ctx.fail(err); }
  }

  async function open(sessionId) {
    try {
      const { recording, manifest } = await ctx.media.get(`recordings/${encodeURIComponent(sessionId)}`);
      const fileName = (path) => path.split("/").pop();
      const src = (path) => ctx.media.url(`recordings/${encodeURIComponent(sessionId)}/files/${encodeURIComponent(fileName(path))}`,
        { token: ctx.auth.token });
      const report = h("div", { testid: "verify-report" });
      const playerRoot = h("div", { class: "player", testid: "player" });
      const missing = missingText(recording.missing);
      const heading = h("h3", { tabindex: "-1" }, t("recordings.detail", { session: sessionId }));
      if (player) player.destroy();
      fill(detail, h("section", { class: "card" },
        heading,
        h("p", { class: "muted" }, `${when(manifest.started_at)} – ${when(manifest.ended_at)} · ${recording.service || "—"}`),
        missing.length ? h("p", { class: "bad", testid: "detail-missing" }, missing.join(" · ")) : null,
        playerRoot,
        h("div", { class: "row" },
          h("button", { type: "button", class: "primary", testid: "verify-recording", onclick: async () => {
            try {
              const { report: r } = await ctx.media.post(`recordings/${encodeURIComponent(sessionId)}/verify`);
              const status = r.status || (r.ok ? "intact" : "tampered");
              const text = status === "intact" ? t("recordings.verified_ok", { count: r.files.length })
                : status === "incomplete" ? t("recordings.verified_incomplete", { count: r.files.length, missing: missingText(r.missing).join(", ") })
                  : t("recordings.verified_bad");
              fill(report, h("p", { class: status === "intact" ? "ok" : status === "incomplete" ? "warn" : "bad",
                testid: "verify-result", "data-ok": String(r.ok), "data-status": status }, text),
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
      // The transcript beside the player: the JSON when there is one (speaker names), else the WebVTT.
      const transcripts = manifest.transcripts || [];
      const chosen = transcripts.find((x) => x.path.endsWith(".json")) || transcripts.find((x) => x.path.endsWith(".vtt"));
      let lines = [];
      if (chosen) {
        try {
          const response = await ctx.media.raw("GET", `recordings/${encodeURIComponent(sessionId)}/files/${encodeURIComponent(fileName(chosen.path))}`);
          lines = parseTranscript(await response.text(), chosen.path.endsWith(".json"));
        } catch (err) { ctx.fail(err); }
      }
      player = renderCallPlayer(playerRoot, { manifest, src, transcript: lines });
      detail.scrollIntoView({ block: "start" });
      heading.focus({ preventScroll: true });
    } catch (err) { ctx.fail(err); }
  }

  form.addEventListener("submit", search);
  fill(root, h("h2", {}, t("tab.recordings")), form, detail, results);
  search();
  // Leaving the tab (or signing out) stops the player's loads before its token is revoked.
  return () => { if (player) player.destroy(); player = null; };
}
