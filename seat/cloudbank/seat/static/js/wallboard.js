// The wallboard table: per queue waiting, longest wait, service level, average speed of answer,
// abandonment, tellers by state and customer satisfaction (CSAT: share of 4-5 ratings, average, count),
// and CSAT per teller. Rendering only; the supervisor screen feeds it.
import { h, fill, clock } from "./dom.js";
import { t, label } from "./i18n.js";
import { labelColumns } from "./table_labels.js";

function pct(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  const v = Number(value);
  return `${Math.round(v <= 1 ? v * 100 : v)}%`;
}

function tellersByState(q) {
  const by = q.tellers || q.tellers_by_state || {};
  const entries = Array.isArray(by) ? by.map((x) => [x.state, x.count]) : Object.entries(by);
  return entries.filter(([, n]) => Number(n) > 0)
    .map(([state, n]) => h("span", { class: `pill state-${state}`, "data-state": state }, `${label("state", state)} ${n}`));
}

/** Queues in a wallboard answer, whatever the exact container name. */
export function wallboardQueues(board) {
  if (!board) return [];
  if (Array.isArray(board.queues)) return board.queues;
  if (board.queues && typeof board.queues === "object") return Object.entries(board.queues).map(([code, q]) => ({ code, ...q }));
  return [];
}

/** "50% · 3.5 (2)": the share of 4-5 ratings, the average score and how many; "–" with none. */
function csatText(c) {
  if (!c || !c.count) return "–";
  return `${pct(c.csat)} · ${Number(c.average).toFixed(1)} (${c.count})`;
}

// One row per teller rated over the metrics window.
function csatTellers(board) {
  const tellers = (board.csat && board.csat.tellers) || [];
  // A heading, not a caption: the wallboard's table keeps the one caption.
  const title = h("h3", { id: "csat-tellers-title", class: "csat-title" },
    t("sup.csat_tellers", { minutes: Math.round((board.window_s || 0) / 60) }));
  return [title, labelColumns(h("table", { class: "grid csat stack", testid: "csat-tellers",
    "aria-labelledby": "csat-tellers-title" },
    h("thead", {}, h("tr", {}, ["sup.teller", "sup.csat", "sup.csat_average", "sup.csat_count"]
      .map((k) => h("th", { scope: "col" }, t(k))))),
    h("tbody", {}, tellers.length ? tellers.map((c) => h("tr", { testid: `csat-teller-${c.teller_id}` },
      h("th", { scope: "row" }, c.name || c.teller_id),
      h("td", { "data-field": "csat" }, pct(c.csat)),
      h("td", { "data-field": "average" }, Number(c.average).toFixed(1)),
      h("td", { "data-field": "count" }, String(c.count))))
      : h("tr", {}, h("td", { colspan: "4", class: "muted", testid: "csat-none" }, t("sup.csat_none"))))))];
}

/** board: `GET /api/wallboard`; names: service code -> name. */
export function renderWallboard(el, board, names = {}) {
  const queues = wallboardQueues(board);
  fill(el,
    labelColumns(h("table", { class: "grid wallboard stack" },
      h("caption", {}, t("sup.wallboard")),
      h("thead", {}, h("tr", {},
        ["sup.queue", "sup.waiting", "sup.longest", "sup.sl", "sup.asa", "sup.abandon", "sup.csat_queue", "sup.tellers"]
          .map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, queues.map((q) => {
        const code = q.code || q.queue || q.service || q.id;
        // The platform computes the metrics over its window from the queue log.
        const m = q.metrics || q;
        const abandoned = m.abandoned ?? 0;
        const rate = m.abandon_rate;
        return h("tr", { "data-queue": code, testid: `wallboard-row-${code}` },
          h("th", { scope: "row" }, names[code] || q.name || code),
          h("td", { "data-field": "waiting" }, String(q.waiting ?? 0)),
          h("td", { "data-field": "longest" }, clock(q.longest_wait_s ?? q.longest_wait ?? 0)),
          h("td", { "data-field": "service_level" }, pct(m.service_level)),
          h("td", { "data-field": "asa" }, m.asa_s === null || m.asa_s === undefined ? "–" : clock(m.asa_s)),
          h("td", { "data-field": "abandoned" }, rate === undefined || rate === null ? String(abandoned) : `${abandoned} (${pct(rate)})`),
          h("td", { "data-field": "csat" }, csatText(board.csat && board.csat.queues && board.csat.queues[code])),
          h("td", { "data-field": "tellers" }, tellersByState(q)));
      })))),
    ...csatTellers(board),
    h("p", { class: "muted", testid: "wallboard-updated" }, t("sup.updated", { time: new Date().toLocaleTimeString() })));
}
