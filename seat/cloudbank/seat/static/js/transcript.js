// The live transcript: a partial line per speaker shown greyed and replaced as it grows, final
// lines with their time and speaker, keyword phrases highlighted, and suggested services listed.
import { h, clock } from "./dom.js";
import { t, label } from "./i18n.js";

/** Split `text` into text and <mark> nodes for every phrase in `phrases` (case-insensitive). */
export function highlight(text, phrases) {
  const list = [...phrases].filter(Boolean).sort((a, b) => b.length - a.length);
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
    out.push(h("mark", { class: `kw kw-${hit.kind || "k"}` }, text.slice(hit.at, hit.at + hit.p.length)));
    i = hit.at + hit.p.length;
  }
  return out;
}

export class Transcript {
  constructor() {
    this.partials = new Map();
    this.phrases = new Map();   // phrase -> kind
    this.finals = [];
    this.finalKeys = new Set();   // a line from the call's history may also come live: show it once
    this.list = h("ol", { class: "lines", testid: "transcript-lines" });
    this.empty = h("p", { class: "muted", testid: "transcript-empty" }, t("transcript.empty"));
    this.el = h("section", { class: "card transcript", "aria-labelledby": "transcript-title" },
      h("h2", { id: "transcript-title" }, t("transcript.title")),
      h("div", { class: "scroll", testid: "transcript", role: "log", "aria-live": "polite", tabindex: "0" },
        this.empty, this.list));
    this.suggestList = h("ul", { class: "suggestions", testid: "suggestions", "aria-live": "polite" });
    this.suggestEl = h("section", { class: "card", "aria-labelledby": "suggest-title" },
      h("h2", { id: "suggest-title" }, t("suggestions.title")), this.suggestList);
    this.suggested = new Set();
  }

  line(ev) {
    const speaker = ev.speaker || "customer";
    this.empty.hidden = true;
    const text = String(ev.text || "");
    const scroller = this.list.parentElement;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    if (!ev.final) {
      let li = this.partials.get(speaker);
      if (!text) { if (li) { li.remove(); this.partials.delete(speaker); } return; }
      if (!li) {
        li = h("li", { class: `line partial speaker-${speaker}`, testid: "transcript-partial", "data-speaker": speaker });
        this.partials.set(speaker, li);
        this.list.append(li);
      }
      li.replaceChildren(h("span", { class: "who" }, label("speaker", speaker)), " ", h("span", { class: "text" }, text));
    } else {
      const partial = this.partials.get(speaker);
      if (partial) { partial.remove(); this.partials.delete(speaker); }
      if (!text) return;
      const key = `${speaker}|${ev.start}|${text}`;
      if (this.finalKeys.has(key)) return;
      this.finalKeys.add(key);
      const li = h("li", { class: `line final speaker-${speaker}`, testid: "transcript-final", "data-speaker": speaker },
        h("time", { class: "at" }, clock(ev.start || 0)), " ",
        h("span", { class: "who" }, label("speaker", speaker)), " ",
        h("span", { class: "text" }, highlight(text, this.phrases.keys())));
      li.dataset.text = text;
      this.finals.push(li);
      // Finals stay in time order; partials stay at the bottom.
      const firstPartial = this.list.querySelector(".partial");
      this.list.insertBefore(li, firstPartial);
    }
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  keyword(ev) {
    const phrase = String(ev.phrase || "");
    if (phrase && !this.phrases.has(phrase)) {
      this.phrases.set(phrase, ev.kind);
      for (const li of this.finals) {
        li.querySelector(".text").replaceChildren(...highlight(li.dataset.text, this.phrases.keys()));
      }
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
