"""Text normalisation made for TTS: pairs that say the same words must score error 0, pairs that
do not must score above 0, whichever side is the reference."""

from __future__ import annotations

import pytest

from verifiers.asr import error_rate
from verifiers.normalize import british_to_american, normalize

# (reference the user typed, what an ASR may write for a right reading, language)
EQUIVALENT = [
    # The issue's examples.
    ("The meeting (on Monday) is cancelled.", "the meeting on monday is canceled", "en"),
    ("The colour of the centre.", "The color of the center.", "en"),
    ("Call me at ten a.m. tomorrow.", "Call me at 10 am tomorrow.", "en"),
    ("2025年", "二零二五年", "zh"),
    # Brackets and tags.
    ("Press [Enter] to continue.", "press enter to continue", "en"),
    ("The total {including tax} is due.", "the total including tax is due", "en"),
    ("She said <quietly> goodbye.", "she said quietly goodbye", "en"),
    ("Well, (laughs) that is funny.", "well laughs that is funny", "en"),
    # Numbers, ordinals, currencies, percentages, times.
    ("I have 3 apples.", "I have three apples.", "en"),
    ("He was born in 1995.", "he was born in nineteen ninety-five", "en"),
    ("The year 2025 was busy.", "the year two thousand and twenty five was busy", "en"),
    ("It happened in 2025.", "it happened in twenty twenty-five", "en"),
    ("She finished 1st in the race.", "she finished first in the race", "en"),
    ("The 21st century began.", "the twenty-first century began", "en"),
    ("This is the 3rd time.", "this is the third time", "en"),
    ("It costs $20.", "it costs twenty dollars", "en"),
    ("Tickets cost £5.50 each.", "tickets cost five pounds fifty each", "en"),
    ("The price rose by 50%.", "the price rose by fifty percent", "en"),
    ("We are 100% sure.", "we are one hundred percent sure", "en"),
    ("The train leaves at 10:30.", "the train leaves at ten thirty", "en"),
    ("Lunch is at 12:00.", "lunch is at twelve o'clock", "en"),
    ("Meet me at 7 p.m.", "meet me at seven pm", "en"),
    ("The shop opens at 9 AM.", "the shop opens at nine a.m.", "en"),
    ("About 1,000 people came.", "about one thousand people came", "en"),
    ("It weighs 2.5 kilograms.", "it weighs two point five kilograms", "en"),
    ("Chapter twelve starts here.", "chapter 12 starts here", "en"),
    # Spellings, case, punctuation, abbreviations, contractions.
    ("My favourite flavour is vanilla.", "my favorite flavor is vanilla", "en"),
    ("They organised a programme.", "they organized a program", "en"),
    ("The grey aeroplane landed.", "the gray airplane landed", "en"),
    ("Please analyse the catalogue.", "please analyze the catalog", "en"),
    ("The theatre was full.", "the theater was full", "en"),
    ("Mr. Smith met Dr. Jones.", "mister smith met doctor jones", "en"),
    ("Don't worry!", "do not worry", "en"),
    ("HELLO, WORLD!!!", "hello world", "en"),
    ("It's a well-known fact.", "it's a well known fact", "en"),
    # Chinese.
    ("今天天气很好。", "今 天 天 气 很 好", "zh"),
    ("我有3个苹果。", "我有三个苹果", "zh"),
    ("第1名是他。", "第一名是他", "zh"),
    ("价格是12.5元。", "价格是十二点五元", "zh-CN"),
    ("涨了50%。", "涨了百分之五十", "zh"),
    ("下午3点见。", "下午三点见", "zh"),
    ("他（明天）来。", "他明天来", "zh"),
    ("２０２５年", "2025年", "zh"),
]

# (reference, a transcript that says something else, language)
NOT_EQUIVALENT = [
    ("The meeting (on Monday) is cancelled.", "the meeting is cancelled", "en"),  # skipped words
    ("Press [Enter] to continue.", "press to continue", "en"),
    ("I have 3 apples.", "I have four apples.", "en"),
    ("I have 3 apples.", "I have 33 apples.", "en"),
    ("She finished 1st in the race.", "she finished second in the race", "en"),
    ("It costs $20.", "it costs twenty pounds", "en"),
    ("It costs $20.", "it costs thirty dollars", "en"),
    ("The train leaves at 10:30.", "the train leaves at ten forty", "en"),
    ("Meet me at 7 p.m.", "meet me at seven am", "en"),
    ("He was born in 1995.", "he was born in nineteen ninety-four", "en"),
    ("The price rose by 50%.", "the price rose by fifteen percent", "en"),
    ("The colour of the centre.", "the collar of the center", "en"),
    ("My favourite flavour is vanilla.", "my favorite flavor is chocolate", "en"),
    ("Call me at ten a.m. tomorrow.", "call me at ten tomorrow", "en"),
    ("Don't worry!", "do worry", "en"),
    ("Well, [laughs] that is funny.", "well that is funny", "en"),  # not marked as tags: spoken
    ("2025年", "二零二四年", "zh"),
    ("我有3个苹果。", "我有四个苹果", "zh"),
    ("今天天气很好。", "今天天气不好", "zh"),
    ("他（明天）来。", "他来", "zh"),
    ("涨了50%。", "涨了百分之五", "zh"),
]


def test_the_table_has_what_the_issue_asks():
    assert len(EQUIVALENT) >= 40 and len(NOT_EQUIVALENT) >= 20


@pytest.mark.parametrize("reference, spoken, language", EQUIVALENT)
def test_equivalent_renderings_score_no_error_either_way(reference, spoken, language):
    assert error_rate(reference, spoken, language)[1] == 0, (normalize(reference, language), normalize(spoken, language))
    assert error_rate(spoken, reference, language)[1] == 0


@pytest.mark.parametrize("reference, spoken, language", NOT_EQUIVALENT)
def test_different_words_score_an_error_either_way(reference, spoken, language):
    assert error_rate(reference, spoken, language)[1] > 0, (normalize(reference, language), normalize(spoken, language))
    assert error_rate(spoken, reference, language)[1] > 0


def test_a_full_reading_beats_one_that_skips_bracketed_words():
    reference = "The meeting (on Monday) is cancelled."
    full = error_rate(reference, "the meeting on monday is cancelled", "en")[1]
    skipped = error_rate(reference, "the meeting is cancelled", "en")[1]
    assert full == 0 and skipped > 0.3


def test_non_speech_tags_are_dropped_only_when_the_request_marks_them():
    reference = "Well, [laughs] that is <sigh> funny."
    assert error_rate(reference, "well that is funny", "en", tags=True)[1] == 0
    assert error_rate(reference, "well that is funny", "en", tags=False)[1] > 0
    assert error_rate("[laughs]", "anything", "en", tags=True) == ("wer", None)


def test_spelling_table_comes_from_the_package_not_a_hand_list():
    table = british_to_american()
    assert len(table) > 1000 and table["colour"] == "color" and table["centre"] == "center"
