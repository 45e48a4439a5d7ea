// Spoken numbers as digits, one small converter per language: what a speech engine writes as words
// ("five thousand", "twelve hundred and fifty", "五千") becomes "5000", "1250", "5000" when the
// teller puts it into a number field. Each converter returns a decimal string, or null when the text
// is not a number it knows.

const EN_UNITS = new Map(Object.entries({
  zero: 0, oh: 0, nought: 0, one: 1, a: 1, an: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7,
  eight: 8, nine: 9, ten: 10, eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15,
  sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19, twenty: 20, thirty: 30, forty: 40, fifty: 50,
  sixty: 60, seventy: 70, eighty: 80, ninety: 90,
}));
const EN_SCALES = new Map(Object.entries({ thousand: 1e3, million: 1e6, billion: 1e9 }));
// Words around an amount that carry no value ("five thousand dollars", "about two hundred").
const EN_FILLER = new Set(["and", "dollar", "dollars", "usd", "us", "euro", "euros", "pound", "pounds",
  "yuan", "rmb", "about", "around", "roughly", "exactly", "only", "just"]);
const EN_DIGIT_WORDS = new Set(["zero", "oh", "nought", "one", "two", "three", "four", "five", "six", "seven",
  "eight", "nine"]);

/** A plain number already in digits ("5,000", "$5000.50"), else null. */
function digits(text) {
  const s = text.replace(/[\s,$€£¥]/g, "");
  return /^\d+(\.\d+)?$/.test(s) ? String(Number(s)) : null;
}

/** English number words (with digits mixed in: "5 thousand") as a decimal string, else null. */
export function englishNumber(text) {
  const plain = digits(String(text || ""));
  if (plain !== null) return plain;
  const words = String(text || "").toLowerCase().replace(/[-‐–]/g, " ").replace(/[^a-z0-9.\s]/g, " ")
    .split(/\s+/).filter(Boolean).filter((w) => !EN_FILLER.has(w));
  if (!words.length || words.every((w) => w === "a" || w === "an")) return null;
  // Digits said one by one ("one two three four") are read as written, not added up.
  if (words.length > 1 && words.every((w) => EN_DIGIT_WORDS.has(w) || /^\d$/.test(w))) {
    return String(Number(words.map((w) => (/^\d$/.test(w) ? w : EN_UNITS.get(w))).join("")));
  }
  let total = 0;      // completed thousands / millions
  let group = 0;      // the current group below a thousand
  let seen = false;
  let fraction = null;  // digits after "point"
  for (const w of words) {
    if (fraction !== null) {
      if (!EN_DIGIT_WORDS.has(w) && !/^\d$/.test(w)) return null;
      fraction += /^\d$/.test(w) ? w : String(EN_UNITS.get(w));
      continue;
    }
    if (w === "point" || w === "dot") { fraction = ""; continue; }
    if (/^\d+(\.\d+)?$/.test(w)) { group += Number(w); seen = true; continue; }
    if (EN_UNITS.has(w)) { group += EN_UNITS.get(w); seen = true; continue; }
    if (w === "hundred") { group = (group || 1) * 100; seen = true; continue; }
    if (EN_SCALES.has(w)) { total += (group || 1) * EN_SCALES.get(w); group = 0; seen = true; continue; }
    return null;   // a word that is not part of a number
  }
  if (!seen || fraction === "") return null;
  const whole = total + group;
  return fraction ? String(Number(`${whole}.${fraction}`)) : String(whole);
}

const ZH_DIGITS = new Map([..."零〇一二三四五六七八九"].map((c, i) => [c, Math.max(0, i - 1)]));
ZH_DIGITS.set("两", 2);
ZH_DIGITS.set("幺", 1);
const ZH_SMALL = new Map([["十", 10], ["百", 100], ["千", 1000]]);

/** Chinese numerals ("五千", "一万二千五百", "两百") as a decimal string, else null. */
export function chineseNumber(text) {
  const plain = digits(String(text || ""));
  if (plain !== null) return plain;
  const s = String(text || "").replace(/[\s元块人民币美元左右大约]/g, "");
  if (!s) return null;
  let total = 0;
  let section = 0;
  let digit = null;
  for (const c of s) {
    if (ZH_DIGITS.has(c)) { digit = ZH_DIGITS.get(c); continue; }
    if (/\d/.test(c)) { digit = (digit || 0) * 10 + Number(c); continue; }
    if (ZH_SMALL.has(c)) { section += (digit === null ? 1 : digit) * ZH_SMALL.get(c); digit = null; continue; }
    if (c === "万") { total += (section + (digit || 0)) * 1e4; section = 0; digit = null; continue; }
    if (c === "亿") { total = (total + section + (digit || 0)) * 1e8; section = 0; digit = null; continue; }
    return null;
  }
  return String(total + section + (digit || 0));
}

/** Language code (as the speech engine or the UI names it) -> converter. */
export const CONVERTERS = { en: englishNumber, zh: chineseNumber };

/** `text` as digits in `lang` ("en-us", "zh"); the other converters are tried when that one has none. */
export function spokenNumber(text, lang = "en") {
  const code = String(lang || "en").toLowerCase().split(/[-_]/)[0];
  const first = CONVERTERS[code];
  for (const convert of [first, ...Object.values(CONVERTERS).filter((c) => c !== first)]) {
    if (!convert) continue;
    const value = convert(text);
    if (value !== null) return value;
  }
  return null;
}
