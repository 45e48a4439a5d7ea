// UI language: one string table per language (../i18n/<lang>.js); English fills any gap.
// The logic is shared by the browser apps (platform/cloudbank/platform/web_common/i18n.js).
import en from "../i18n/en.js";
import zh from "../i18n/zh.js";
import { createI18n } from "../../common/i18n.js";

export const { language, setLanguage, onLanguageChange, t, label, LANGUAGES } =
  createI18n({ en, zh }, "cloudbank.seat.lang");
