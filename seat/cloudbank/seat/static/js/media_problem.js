// Why the call's video is not connected, in words, under the call's status: the reason the link
// diagnosed (rtc_diagnosis.js), the facts it rests on (ICE state, candidate pairs, the node's or
// the platform's error code), whether the console is still rejoining by itself, and "Try again".
import { h } from "./dom.js";
import { t } from "./i18n.js";

const REASONS = {
  blocked: "media.why_blocked",
  no_path: "media.why_no_path",
  node_unreachable: "media.why_node_unreachable",
  no_answer: "media.why_no_answer",
  no_node: "media.why_no_node",
  room_full: "media.why_room_full",
  dtls: "media.why_dtls",
  offline: "media.why_offline",
  lost: "media.why_lost",
  refused: "media.why_refused",
};

/** The log line for a problem: [translation key, params]. */
export function reasonNote(p) {
  return [REASONS[p.reason] || "media.why_lost", { message: p.nodeError || "" }];
}

/** The facts behind a reason, e.g. "ICE checking; 1 candidate pair(s) tried, 0 answered ...". */
export function details(p) {
  const parts = [];
  const s = p.stats;
  if (s) {
    parts.push(t("media.detail_ice", { state: s.ice || "new", pairs: s.pairs, succeeded: s.succeeded, failed: s.failed,
      local: s.local, remote: s.remote }));
  }
  if (p.nodeError) parts.push(t("media.detail_node", { code: p.nodeError }));
  if (p.grantError) parts.push(t("media.detail_grant", { code: p.grantError }));
  return parts.join(" · ");
}

export class MediaProblem {
  /** onRetry(): a promise; the button is busy until it settles. */
  constructor(onRetry) {
    this.onRetry = onRetry;
    this.reason = h("p", { class: "media-reason", testid: "media-reason" });
    this.detail = h("p", { class: "media-detail", testid: "media-detail" });
    this.next = h("p", { class: "media-next", testid: "media-next" });
    this.button = h("button", { type: "button", class: "primary", testid: "media-retry",
      onclick: () => this.retry() }, t("media.retry"));
    this.el = h("div", { class: "media-problem", testid: "media-problem", role: "alert", hidden: true },
      h("strong", { class: "media-title" }, t("media.problem")), this.reason, this.detail, this.next, this.button);
  }

  /** Show a problem ({reason, stats, nodeError, grantError, attempt, max, gaveUp}); returns the reason's words. */
  show(p) {
    const text = t(...reasonNote(p));
    this.el.hidden = false;
    this.el.dataset.reason = p.reason;
    this.el.dataset.gaveUp = String(Boolean(p.gaveUp));
    this.reason.textContent = text;
    const facts = details(p);
    this.detail.textContent = facts ? t("media.detail", { detail: facts }) : "";
    this.next.textContent = p.gaveUp ? t("media.gave_up", { n: p.attempt })
      : t("media.auto_retry", { n: p.attempt, max: p.max });
    this.button.disabled = false;
    this.button.textContent = t("media.retry");
    // The person has to act now: put the way out under their hands (unless they are typing elsewhere).
    const idle = !document.activeElement || document.activeElement === document.body;
    if (p.gaveUp && idle) this.button.focus({ preventScroll: true });
    return text;
  }

  hide() {
    this.el.hidden = true;
    delete this.el.dataset.reason;
  }

  async retry() {
    this.button.disabled = true;
    this.button.textContent = t("media.retrying");
    this.next.textContent = t("media.retrying");
    try {
      await this.onRetry();
    } finally {
      this.button.disabled = false;
      this.button.textContent = t("media.retry");
    }
  }
}
