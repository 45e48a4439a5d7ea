// Kiosk playlists per branch, under maker-checker: a change is a pending version until a
// different admin approves it; kiosks only ever play approved versions.
import { h, fill, when } from "./dom.js";
import { t } from "./i18n.js";

/** How long an item plays by default: a video its own length (probed by the server), an image 10 s. */
export function defaultSeconds(item) {
  if (item.kind === "video" && item.duration_s) return Math.min(3600, Math.max(1, Math.round(item.duration_s)));
  return 10;
}

export function renderPlaylists(root, ctx) {
  const me = ctx.auth.user.id;
  const draft = [];  // [{item, duration_s}]
  const branchSel = h("select", { id: "pl-branch", testid: "playlist-branch" });
  const nameInput = h("input", { id: "pl-name", testid: "playlist-name", maxlength: "200" });
  const available = h("div", { class: "available", testid: "playable-items" });
  const draftEl = h("ol", { class: "draft", testid: "playlist-draft" });
  const submit = h("button", { type: "submit", class: "primary", testid: "playlist-submit" }, t("playlists.submit"));
  const listEl = h("div", { class: "playlists", testid: "playlist-list" });
  let playlists = [];

  function renderDraft() {
    fill(draftEl, draft.map((entry, i) => h("li", { testid: `draft-${i}` },
      h("span", { class: "grow" }, entry.item.name),
      h("label", {}, t("playlists.seconds"), h("input", { type: "number", min: "1", max: "3600", step: "1",
        value: String(entry.duration_s), testid: `draft-duration-${i}`,
        onchange: (ev) => { entry.duration_s = Number(ev.target.value); } })),
      h("button", { type: "button", testid: `draft-up-${i}`, disabled: i === 0,
        "aria-label": t("playlists.move_up_named", { name: entry.item.name }),
        onclick: () => { draft.splice(i - 1, 0, draft.splice(i, 1)[0]); renderDraft(); } }, `↑ ${t("playlists.move_up")}`),
      h("button", { type: "button", testid: `draft-down-${i}`, disabled: i === draft.length - 1,
        "aria-label": t("playlists.move_down_named", { name: entry.item.name }),
        onclick: () => { draft.splice(i + 1, 0, draft.splice(i, 1)[0]); renderDraft(); } }, `↓ ${t("playlists.move_down")}`),
      h("button", { type: "button", testid: `draft-remove-${i}`,
        onclick: () => { draft.splice(i, 1); renderDraft(); } }, t("playlists.remove")))));
    submit.disabled = draft.length === 0;
  }

  function loadIntoDraft(playlist, version) {
    draft.length = 0;
    branchSel.value = playlist.branch_id;
    nameInput.value = playlist.name;
    for (const e of version.items) {
      const item = itemsById.get(e.item_id);
      if (item) draft.push({ item, duration_s: e.duration_s });
    }
    renderDraft();
  }

  const itemsById = new Map();
  const form = h("form", { class: "card", testid: "playlist-form" },
    h("h3", {}, t("playlists.build")),
    h("div", { class: "row" },
      h("label", { class: "field", for: "pl-branch" }, h("span", {}, t("playlists.branch")), branchSel),
      h("label", { class: "field", for: "pl-name" }, h("span", {}, t("playlists.name")), nameInput)),
    h("p", { class: "hint" }, t("playlists.add_hint")), available,
    h("h4", {}, t("playlists.order")), draftEl, submit);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const items = draft.map((e) => ({ item_id: e.item.id, duration_s: e.duration_s }));
    const existing = playlists.find((p) => p.branch_id === branchSel.value);
    submit.disabled = true;
    try {
      if (existing) await ctx.media.post(`playlists/${existing.id}/versions`, { items });
      else await ctx.media.post("playlists", { branch: branchSel.value, name: nameInput.value.trim(), items });
      ctx.notify(t("playlists.proposed"), "info");
      draft.length = 0;
      renderDraft();
      await refresh();
    } catch (err) {
      ctx.fail(err);
    } finally {
      submit.disabled = draft.length === 0;
    }
  });

  async function decide(playlist, version, action) {
    try {
      if (action === "approve") await ctx.media.post(`playlists/${playlist.id}/versions/${version.version}/approve`);
      else {
        const reason = root.querySelector(`[data-testid="reject-reason-${playlist.branch_id}"]`);
        await ctx.media.post(`playlists/${playlist.id}/versions/${version.version}/reject`,
          { reason: reason ? reason.value : "" });
      }
      ctx.notify(t(action === "approve" ? "playlists.approved_msg" : "playlists.rejected_msg",
        { version: version.version }), "info");
      await refresh();
    } catch (err) { ctx.fail(err); }
  }

  function versionView(playlist, version) {
    const mine = version.made_by === me;
    const names = version.items.map((e) => `${(itemsById.get(e.item_id) || { name: e.item_id }).name} (${e.duration_s} s)`);
    return h("li", { class: `version ${version.state}`, testid: `version-${version.version}`, "data-state": version.state },
      h("strong", {}, t("playlists.version", { version: version.version })), " ",
      h("span", { class: "badge", testid: "version-state" }, t(`state.${version.state}`)), " ",
      h("span", { class: "muted", testid: "version-made-by" }, t("playlists.made_by", {
        who: mine ? t("playlists.you") : (version.made_by_name || version.made_by), when: when(version.made_at) })),
      h("div", { class: "muted", testid: "version-items" }, names.join(" · ")),
      version.state === "pending" ? h("div", { class: "row" },
        mine ? h("span", { class: "hint", testid: "own-change" }, t("playlists.own_change")) :
          h("button", { type: "button", class: "primary", testid: "approve-version",
            onclick: () => decide(playlist, version, "approve") }, t("playlists.approve")),
        h("input", { testid: `reject-reason-${playlist.branch_id}`, maxlength: "500", placeholder: t("playlists.reason") }),
        h("button", { type: "button", testid: "reject-version", onclick: () => decide(playlist, version, "reject") },
          mine ? t("playlists.withdraw") : t("playlists.reject"))) : null,
      version.state === "approved" ? h("button", { type: "button", testid: "edit-version",
        onclick: () => loadIntoDraft(playlist, version) }, t("playlists.edit")) : null);
  }

  async function refresh() {
    try {
      const [{ branches }, { items }, listed] = await Promise.all([
        ctx.media.get("branches"), ctx.media.get("items"), ctx.media.get("playlists")]);
      playlists = listed.playlists;
      itemsById.clear();
      for (const item of items) itemsById.set(item.id, item);
      const chosen = branchSel.value;
      fill(branchSel, branches.map((b) => h("option", { value: b.id }, `${b.name} (${b.id})`)));
      if (chosen) branchSel.value = chosen;
      const playable = items.filter((i) => i.kind === "video" || i.kind === "image");
      fill(available, playable.length === 0 ? h("p", {}, t("playlists.no_items")) : playable.map((item) =>
        h("button", { type: "button", class: "chip", testid: `add-item-${item.id}`, "data-name": item.name,
          onclick: () => { draft.push({ item, duration_s: defaultSeconds(item) }); renderDraft(); } },
        `+ ${item.name}`)));
      fill(listEl, playlists.length === 0 ? h("p", { testid: "playlist-empty" }, t("playlists.none")) :
        playlists.map((p) => h("section", { class: "card", testid: `playlist-${p.branch_id}`,
          "data-approved": p.approved_version ?? "", "data-pending": p.pending_version ?? "" },
        h("h3", {}, `${p.name} — ${p.branch_id}`),
        h("p", { class: "muted", testid: "playlist-live" }, p.approved_version
          ? t("playlists.live", { version: p.approved_version }) : t("playlists.not_live")),
        h("ol", { class: "versions" }, p.versions.slice().reverse().map((v) => versionView(p, v))))));
    } catch (err) { ctx.fail(err); }
  }

  fill(root, h("h2", {}, t("tab.playlists")), form, listEl);
  renderDraft();
  refresh();
}
