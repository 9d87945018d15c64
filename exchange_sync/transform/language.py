"""Language of the body: py3langid (langid.py's model, shipped in the wheel, offline, ~40 µs/text).

Chosen over langdetect (~5 ms/text, random unless seeded) and lingua (accurate, but a large
wheel); measured on the golden samples in docs/transform.md. Short text gives no language: on a
few words every detector guesses, and a wrong language is worse than none.
"""

from __future__ import annotations

import re
from functools import lru_cache

MIN_LETTERS = 20  # below this, detectors are guessing
MIN_CONFIDENCE = 0.5
_MAX_CHARS = 1000  # the first paragraphs decide: 1000 vs 2000 chars, same 3,000/3,000 on generated mail, half the time
_LETTER_RE = re.compile(r"[^\W\d_]")
_URL_RE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+")


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # Normalised probabilities give a confidence to threshold on (the default gives log-scores).
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language, or None when the text is too short or ambiguous."""
    sample = _URL_RE.sub(" ", text[:_MAX_CHARS])
    if len(_LETTER_RE.findall(sample)) < MIN_LETTERS:
        return None
    try:
        language, confidence = _identifier().classify(sample)
    except Exception:  # noqa: BLE001 - language is an enrichment, never a reason to fail
        return None
    code = str(language)
    # Only real ISO 639-1 codes: langid's "zxx"-like labels mean "no linguistic content".
    if confidence < MIN_CONFIDENCE or not (len(code) == 2 and code.isalpha()):
        return None
    return code
