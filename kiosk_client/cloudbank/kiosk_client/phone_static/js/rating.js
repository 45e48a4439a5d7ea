// The satisfaction question at the end of a call (the kiosk screen and the phone page): a score of
// 1 to 5 and an optional comment. The customer may skip it, and it closes by itself after
// RATING_TIMEOUT_S without a touch (the next customer at a kiosk must not find it open); each touch
// or keystroke gives the customer the full time again.

import { say, t } from "./i18n.js";

export const RATING_TIMEOUT_S = 30;
export const MAX_COMMENT = 500;   // the platform's limit (ratings.MAX_COMMENT)

function el(tag, attrs = {}) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/**
 * Ask in `panel`; `send(score, comment)` posts it (throws what the platform refused, shown with
 * `friendly(err)`). Returns { closed: Promise<"rated" | "skipped" | "timeout" | "cancelled">, cancel() }.
 */
export function askRating(panel, { send, friendly, timeoutS = RATING_TIMEOUT_S }) {
  let score = 0;
  let deadline = Date.now() + timeoutS * 1000;
  let resolve;
  const closed = new Promise((r) => { resolve = r; });

  const question = say(el("h3", { id: "rating-question", "data-testid": "rating-question" }), "rating.question");
  const scores = el("div", { class: "rating-scores", role: "group", "aria-labelledby": "rating-question" });
  const buttons = [1, 2, 3, 4, 5].map((n) => {
    const b = el("button", { type: "button", class: "secondary", "data-testid": `rating-${n}`, "aria-pressed": "false",
      "data-i18n-label": `rating.score_${n}`, "aria-label": t(`rating.score_${n}`) });
    b.textContent = String(n);
    b.addEventListener("click", () => {
      score = n;
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === b));
      submit.disabled = false;
      touched();
    });
    return b;
  });
  scores.append(...buttons);
  const ends = el("p", { class: "rating-ends", "aria-hidden": "true" });
  ends.append(say(el("span"), "rating.low"), say(el("span"), "rating.high"));
  const label = el("label", { for: "rating-comment" });
  say(label, "rating.comment");
  const comment = el("textarea", { id: "rating-comment", "data-testid": "rating-comment", rows: "3",
    maxlength: String(MAX_COMMENT) });
  comment.addEventListener("input", () => touched());
  const submit = el("button", { type: "button", "data-testid": "rating-submit" });
  say(submit, "rating.submit");
  submit.disabled = true;
  const skip = el("button", { type: "button", class: "secondary", "data-testid": "rating-skip" });
  say(skip, "rating.skip");
  const countdown = el("p", { class: "muted", "data-testid": "rating-countdown", "aria-live": "off" });
  const problem = el("p", { class: "error", "data-testid": "rating-error", role: "alert" });
  const actions = el("div", { class: "actions" });
  actions.append(submit, skip);
  panel.replaceChildren(question, scores, ends, label, comment, actions, countdown, problem);
  panel.hidden = false;

  const tick = () => {
    const left = Math.ceil((deadline - Date.now()) / 1000);
    if (left <= 0) { close("timeout"); return; }
    say(countdown, "rating.closes_in", { n: left });
  };
  const timer = setInterval(tick, 1000);
  function touched() { deadline = Date.now() + timeoutS * 1000; tick(); }
  function close(how) {
    clearInterval(timer);
    if (how !== "rated") { panel.hidden = true; panel.replaceChildren(); }
    resolve(how);
  }

  submit.addEventListener("click", async () => {
    if (!score) return;
    submit.disabled = skip.disabled = true;
    problem.textContent = "";
    try {
      await send(score, comment.value.trim());
      clearInterval(timer);
      const thanks = say(el("p", { class: "big", "data-testid": "rating-thanks", role: "status" }), "rating.thanks");
      panel.replaceChildren(thanks);
      close("rated");
    } catch (err) {
      problem.textContent = friendly(err);
      submit.disabled = skip.disabled = false;
      touched();
    }
  });
  skip.addEventListener("click", () => close("skipped"));
  tick();
  return { closed, cancel: () => close("cancelled") };
}
