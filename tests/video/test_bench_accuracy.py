"""`cloudbank bench asr` runs its accuracy run end to end on a few festival sentences: each through
Opus -> the audio tap -> pocketsphinx (free decoding and phrase search), scored against what was said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudbank.platform import cli
from cloudbank.video.bench_accuracy import SENTENCES, phrases_in, word_errors

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_sentence_set_is_a_bank_s_and_the_scoring_counts_what_it_should() -> None:
    assert len(SENTENCES) >= 40
    assert {c for c, _ in SENTENCES} == {"request", "numbers", "disclosure", "answer"}
    with_phrase = [t for _, t in SENTENCES if phrases_in(t)]
    # Enough of each: sentences with phrases for recall, sentences without for false alarms.
    assert len(with_phrase) >= 12 and len(SENTENCES) - len(with_phrase) >= 20
    assert phrases_in("This fund is not guaranteed and you may lose money.") == {"not guaranteed", "you may lose money"}
    assert word_errors("a b c d".split(), "a x c".split()) == 2


def test_bench_asr_prints_and_writes_the_accuracy_of_each_installed_engine(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "asr.json"
    code = cli.main(["bench", "asr", "--sentences", "2", "--streams", "1", "--data", str(tmp_path),
                     "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    sphinx = next(e for e in result["engines"] if e["engine"] == "pocketsphinx")
    assert sphinx["phrase_search"] and sphinx["streams"] == 1
    # Two sentences, each clean and noisy, each with a phrase: festival's clean speech is heard.
    assert sphinx["clean"]["sentences"] == sphinx["noisy"]["sentences"] == 2
    assert sphinx["clean"]["wer"] <= 0.3
    assert sphinx["clean"]["phrase_recall"] >= 0.5
    assert 0 < sphinx["rtf_cpu"] < 1 and sphinx["rss_mb_per_stream"] > 0
    assert sphinx["clean"]["final_after_speech_s_p95"] is not None
    printed = capsys.readouterr().out
    assert "pocketsphinx" in printed and "WER" in printed
