"""The UI string tables: English and Chinese hold the same keys, every key the code asks for exists,
and every code the screens show a label for (states, reasons, dispositions) has one."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).parents[2] / "seat" / "cloudbank" / "seat" / "static"
ENTRY = re.compile(r'^\s*"([a-z0-9_.]+)":\s*"((?:[^"\\]|\\.)*)",?\s*$', re.M)


def table(lang: str) -> dict[str, str]:
    text = (STATIC / "i18n" / f"{lang}.js").read_text(encoding="utf-8")
    entries = dict(ENTRY.findall(text))
    assert len(entries) == len(ENTRY.findall(text)), f"{lang}.js repeats a key"
    return entries


def sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((STATIC / "js").glob("*.js")))


def test_both_tables_have_the_same_keys() -> None:
    en, zh = table("en"), table("zh")
    assert len(en) > 150
    assert sorted(set(en) - set(zh)) == []
    assert sorted(set(zh) - set(en)) == []


def test_chinese_strings_are_translated() -> None:
    en, zh = table("en"), table("zh")
    same = [k for k in en if en[k] == zh[k] and re.search(r"[A-Za-z]{3}", re.sub(r"\{\w+\}|kbit", "", en[k]))]
    assert same == []
    assert all(re.search(r"[\u4e00-\u9fff]", zh[k]) for k in zh if k.startswith("login.")), "login untranslated"


def test_placeholders_match_between_languages() -> None:
    en, zh = table("en"), table("zh")
    for key in en:
        assert set(re.findall(r"\{\w+\}", en[key])) == set(re.findall(r"\{\w+\}", zh[key])), key


def test_every_key_the_code_uses_exists() -> None:
    en = table("en")
    used = set(re.findall(r'\bt\(\s*"([a-z0-9_.]+)"', sources()))
    # The call log keeps its lines as keys: note("call.x", ...) is looked up like t("call.x").
    used |= set(re.findall(r'\bnote\(\s*"([a-z0-9_.]+)"', sources()))
    assert used, "no t() calls found: the pattern is stale"
    assert sorted(used - set(en)) == []


def test_every_listed_code_has_a_label() -> None:
    en = table("en")
    code = sources()
    reasons = re.search(r"NOT_READY_REASONS = \[([^\]]*)\]", code)
    dispositions = re.search(r"DISPOSITIONS = \[([^\]]*)\]", code)
    assert reasons and dispositions
    for prefix, match in (("reason", reasons), ("disposition", dispositions)):
        for value in re.findall(r'"([a-z_]+)"', match.group(1)):
            assert f"{prefix}.{value}" in en
    # The platform's teller states (routing.TELLER_STATES) and the ACD's not-ready reasons.
    for state in ("offline", "ready", "not_ready", "offered", "busy", "wrap_up"):
        assert f"state.{state}" in en
    for reason in ("declined", "ring_no_answer", "break"):
        assert f"reason.{reason}" in en
