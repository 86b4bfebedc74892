"""Text normalisation for scoring TTS: the user's text is what must be spoken.

Both sides (the request's text and the ASR transcript) go through the same rules, and every
spoken word is kept:

- Text in parentheses or brackets is spoken, so it stays (Whisper's own normaliser deletes it,
  which made a reading that skips it score better than a full one). Non-speech tags such as
  `[laughs]` are removed only when the request says its text has tags (`tags=True`); then
  `[...]` and `<...>` spans go on both sides.
- English: numbers, ordinals, currencies and percentages fold to digits by the inverse text
  normaliser of Whisper's English normaliser (transformers), so "twenty dollars" = "$20",
  "first" = "1st", "two thousand and twenty five" = "2025". Clock times "10:30" are spoken
  first ("ten thirty"), so they meet the ASR's words on the same path; "a.m."/"p.m." = "am"/"pm";
  "£5.50" = "five pounds fifty". British spellings map to American with the 1,700-word table that
  ships with Whisper's normaliser (the `whisper-normalizer` package's english.json).
- Chinese (and ja/ko/yue): NFKC (full-width digits), whitespace dropped, Chinese numerals to
  Arabic with cn2an ("二零二五年" = "2025年", "百分之五十" = "50%"; zh and yue), then
  punctuation and symbols removed.
- Other languages: Whisper's basic normaliser, keeping bracketed text.

Measured choice (2 shared CPU cores): Whisper's English normaliser is already a dependency;
cn2an is a 228 kB pure-Python wheel. A whole normalisation takes about 0.5 ms for an English
sentence and 0.3 ms for a Chinese one, nothing beside an ASR pass.
WeTextProcessing and nemo-text-processing need pynini (a 158 MB wheel) and compile finite-state
grammars; num2words / inflect verbalise digits to words, the opposite direction, where "2025"
has several spoken forms and the ASR writes digits anyway.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from importlib.resources import files

CHARACTER_LANGUAGES = ("zh", "ja", "ko", "yue")

_TAG = re.compile(r"\[[^\]]*\]|<[^>]*>")
_BRACKETS = re.compile(r"[\[\](){}<>]")
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_MERIDIEM = re.compile(r"\b([ap]) m\b")
_CURRENCY_CENTS = re.compile(r"([£$€])(\d+)\.(\d{2})\b")
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def base_language(language: str) -> str:
    return language.split("-")[0].split("_")[0].lower()


@lru_cache(maxsize=1)
def british_to_american() -> dict[str, str]:
    """OpenAI Whisper's British -> American spelling table, as shipped by whisper-normalizer."""
    return json.loads(files("whisper_normalizer").joinpath("normalizers/english.json").read_text())


@lru_cache(maxsize=1)
def _english():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(british_to_american())


@lru_cache(maxsize=1)
def _basic():
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer()


def _number_words(n: int) -> str:
    """0-59 in words: enough for the minutes and hours of a clock time."""
    if n < 20:
        return _ONES[n]
    return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])


def _speak_clock(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 24 or minutes > 59:
        return match.group(0)
    if minutes == 0:
        return f"{_number_words(hours)} o'clock"
    return f"{_number_words(hours)} {'oh ' if minutes < 10 else ''}{_number_words(minutes)}"


def _chinese_numerals_to_digits(text: str) -> str:
    import warnings

    import cn2an

    with warnings.catch_warnings():  # cn2an warns about runs it keeps as they are ("万一")
        warnings.simplefilter("ignore")
        try:
            return cn2an.transform(text, "cn2an")
        except (ValueError, KeyError, IndexError):
            return text


def without_tags(text: str) -> str:
    """`text` with its non-speech tags ([laughs], <breath>) taken out."""
    return " ".join(_TAG.sub(" ", text).split())


def normalize(text: str, language: str = "en", tags: bool = False) -> str:
    """The words (English, other alphabetic languages; space separated) or the characters
    (Chinese, Japanese, Korean; no spaces) that `text` says, in a canonical written form."""
    text = unicodedata.normalize("NFKC", text)
    if tags:
        text = without_tags(text)
    text = _BRACKETS.sub(" ", text)
    base = base_language(language)
    if base in CHARACTER_LANGUAGES:
        if base in ("zh", "yue"):
            text = _chinese_numerals_to_digits("".join(text.split()))
        return "".join(_basic()(text).split())
    if base != "en":
        return " ".join(_basic()(text).split())
    text = _CLOCK.sub(_speak_clock, text)
    text = _english()(text)
    text = _MERIDIEM.sub(r"\1m", text)
    text = _CURRENCY_CENTS.sub(r"\1\2 \3", text)
    return " ".join(text.split())
