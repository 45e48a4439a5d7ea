// The live transcript: a partial line per speaker shown greyed (with its speaker and time) and
// replaced as it grows until its final settles in its place; final lines with their time and speaker;
// the phrases the engine's phrase search heard marked in the line at the time and by the speaker it
// heard them (phrases matched in the text, for engines without a phrase search); suggested services
// listed; and, when the video node does not transcribe, a sentence saying so instead of an empty panel.
import { h, clock } from "./dom.js";
import { t, label, language } from "./i18n.js";

// Word times of free decoding and of the phrase search differ by a frame or two.
const SLACK_S = 0.15;

/** Split `text` into text and <mark> nodes for every phrase of `phrases` (phrase -> kind; case-insensitive). */
export function highlight(text, phrases) {
  const kinds = new Map(phrases);
  const list = [...kinds.keys()].filter(Boolean).sort((a, b) => b.length - a.length);
  if (!list.length) return [text];
  const lower = text.toLowerCase();
  const out = [];
  let i = 0;
  while (i < text.length) {
    let hit = null;
    for (const p of list) {
      const at = lower.indexOf(p.toLowerCase(), i);
      if (at !== -1 && (hit === null || at < hit.at)) hit = { at, p };
    }
    if (!hit) { out.push(text.slice(i)); break; }
    if (hit.at > i) out.push(text.slice(i, hit.at));
    out.push(h("mark", { class: `kw kw-${kinds.get(hit.p) || "k"}`, "data-phrase": hit.p },
      text.slice(hit.at, hit.at + hit.p.length)));
    i = hit.at + hit.p.length;
  }
  return out;
}

/** The words of a line with those inside a heard phrase's time (`spans`: {at, end, kind, phrase}) joined
 * into one <mark> per phrase; null when no word is inside one. Of the words inside a phrase's time,
 * those at its edges that are not words of the phrase are left out (the search's start and end are a
 * little wide), unless none is: then free decoding misheard it and the words at that time are marked. */
export function markHeard(words, spans) {
  if (!spans.length || !words.length) return null;
  const spanOf = words.map((w) => {
    const mid = (Number(w.start) + Number(w.end)) / 2;
    return spans.find((s) => mid >= s.at - SLACK_S && mid <= s.end + SLACK_S) || null;
  });
  const norm = (x) => String(x).toLowerCase().replace(/[^\p{L}\p{N}']+/gu, "");
  for (let i = 0; i < words.length;) {
    const span = spanOf[i];
    let j = i;
    while (j < words.length && spanOf[j] === span) j += 1;
    if (span) {
      const own = new Set(span.phrase.split(/\s+/).map(norm));
      let a = i, b = j - 1;
      while (a <= b && !own.has(norm(words[a].word))) a += 1;
      while (b >= a && !own.has(norm(words[b].word))) b -= 1;
      if (a <= b) for (let k = i; k < j; k += 1) if (k < a || k > b) spanOf[k] = null;
    }
    i = j;
  }
  if (!spanOf.some(Boolean)) return null;
  const out = [];
  let run = null;
  words.forEach((w, i) => {
    const span = spanOf[i];
    if (span && run && run.span === span) { run.el.append(` ${w.word}`); return; }
    if (out.length) out.push(" ");
    if (span) {
      run = { span, el: h("mark", { class: `kw kw-${span.kind || "k"}`, "data-phrase": span.phrase,
        title: t("transcript.heard", { phrase: span.phrase }) }, String(w.word)) };
      out.push(run.el);
    } else {
      run = null;
      out.push(String(w.word));
    }
  });
  return out;
}

/** A speech language code ("en-us") as the UI's language names it ("American English"). */
function languageName(code) {
  try {
    return new Intl.DisplayNames([language()], { type: "language" }).of(code) || code;
  } catch { return code; }
}

export class Transcript {
  constructor() {
    this.partials = new Map();
    this.phrases = new Map();   // phrase -> kind: matched in the line's text (no times: engines without a phrase search)
    this.heard = [];   // {speaker, at, end, kind, phrase}: what the phrase search heard, when and from whom
    this.finals = [];
    this.finalKeys = new Set();   // a line from the call's history may also come live: show it once
    this.list = h("ol", { class: "lines", testid: "transcript-lines" });
    this.empty = h("p", { class: "muted", testid: "transcript-empty" }, t("transcript.empty"));
    // What the video node said of transcription in this call (signalling's `joined`).
    this.engineEl = h("p", { class: "muted transcript-engine", testid: "transcript-engine", role: "status", hidden: true });
    this.el = h("section", { class: "card transcript", "aria-labelledby": "transcript-title" },
      h("h2", { id: "transcript-title" }, t("transcript.title")),
      h("div", { class: "scroll", testid: "transcript", role: "log", "aria-live": "polite", tabindex: "0" },
        this.engineEl, this.empty, this.list));
    this.suggestList = h("ul", { class: "suggestions", testid: "suggestions", "aria-live": "polite" });
    this.suggestEl = h("section", { class: "card", "aria-labelledby": "suggest-title" },
      h("h2", { id: "suggest-title" }, t("suggestions.title")), this.suggestList);
    this.suggested = new Set();
    this.lines = 0;
  }

  /** The node's word on transcription: `{state: "on", engine, language}` or `{state: "off", reason}`. */
  transcription(info) {
    if (!info || typeof info !== "object") return;
    const off = info.state === "off" && !this.lines;
    this.engineEl.hidden = false;
    this.engineEl.dataset.state = off ? "off" : "on";
    this.engineEl.classList.toggle("transcript-off", off);
    this.engineEl.textContent = off
      ? t(info.reason === "disabled" ? "transcript.off_disabled" : "transcript.off_unavailable")
      : t("transcript.engine", { language: languageName(String(info.language || "")), engine: String(info.engine || "") });
    if (info.state === "off" && this.lines) this.engineEl.hidden = true;
    this.empty.hidden = off || this.lines > 0;
  }

  line(ev) {
    const speaker = ev.speaker || "customer";
    this.empty.hidden = true;
    if (this.engineEl.dataset.state === "off") this.engineEl.hidden = true;   // lines came all the same
    this.lines += 1;
    const text = String(ev.text || "");
    const scroller = this.list.parentElement;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    const partial = this.partials.get(speaker);
    if (!ev.final) {
      let li = partial;
      if (!text) { if (li) { li.remove(); this.partials.delete(speaker); } return; }
      if (!li) {
        li = h("li", { class: `line partial speaker-${speaker}`, testid: "transcript-partial", "data-speaker": speaker });
        this.partials.set(speaker, li);
        this.list.append(li);
      }
      li.replaceChildren(h("time", { class: "at" }, clock(ev.start || 0)), " ",
        h("span", { class: "who" }, label("speaker", speaker)), " ", h("span", { class: "text" }, text));
    } else {
      if (partial) this.partials.delete(speaker);
      if (!text) { if (partial) partial.remove(); return; }
      const key = `${speaker}|${ev.start}|${text}`;
      if (this.finalKeys.has(key)) { if (partial) partial.remove(); return; }
      this.finalKeys.add(key);
      const li = h("li", { class: `line final speaker-${speaker}`, testid: "transcript-final", "data-speaker": speaker },
        h("time", { class: "at" }, clock(ev.start || 0)), " ",
        h("span", { class: "who" }, label("speaker", speaker)), " ",
        h("span", { class: "text" }));
      li.dataset.text = text;
      li.dataset.start = String(ev.start || 0);
      li.words = Array.isArray(ev.words) ? ev.words : [];
      this.renderText(li, speaker);
      this.finals.push(li);
      // The final settles where its partial was; else it goes above the partials still growing.
      if (partial) partial.replaceWith(li);
      else this.list.insertBefore(li, this.list.querySelector(".partial"));
    }
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  renderText(li, speaker) {
    const spans = this.heard.filter((s) => s.speaker === speaker);
    const nodes = markHeard(li.words, spans) || highlight(li.dataset.text, this.phrases);
    li.querySelector(".text").replaceChildren(...nodes);
  }

  keyword(ev) {
    const phrase = String(ev.phrase || "");
    if (phrase && typeof ev.end === "number") {
      // Heard by the phrase search: marked where and from whom it was heard.
      this.heard.push({ speaker: ev.speaker || "customer", at: Number(ev.at), end: ev.end, kind: ev.kind, phrase });
      for (const li of this.finals) if (li.dataset.speaker === (ev.speaker || "customer")) this.renderText(li, li.dataset.speaker);
    } else if (phrase && !this.phrases.has(phrase)) {
      this.phrases.set(phrase, ev.kind);
      for (const li of this.finals) this.renderText(li, li.dataset.speaker);
    }
    const key = `${ev.kind}:${ev.service || phrase}`;
    if (this.suggested.has(key)) return;
    this.suggested.add(key);
    const text = ev.kind === "suggest" ? t("keyword.suggest", { service: ev.service_name || ev.service || phrase })
      : ev.kind === "forbidden" ? t("keyword.forbidden", { phrase }) : t("keyword.required", { phrase });
    this.suggestList.append(h("li", { class: `kw-${ev.kind}`, testid: `keyword-${ev.kind}`,
      "data-service": ev.service || "" }, text));
  }
}
