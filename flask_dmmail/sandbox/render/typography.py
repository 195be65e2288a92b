"""Notify's subject typography: utils' ``do_nice_typography`` with SmartyPants' quote rules.

:func:`format_subject` is the pass Notify makes over a filled subject;
:func:`plain_typography` is the same pass for text known to hold no markup (the email HTML
uses it). Written from the behaviour, not from their code.
"""

from __future__ import annotations

import re

from .placeholders import NBSP, ZERO_WIDTH

__all__ = ["format_subject", "plain_typography"]


# The lookbehinds only stop a match from starting inside a run where it could have started
# at the front: the same matches, but linear time on long runs.
_SPACE_BEFORE_PUNCTUATION = re.compile(r"(?<![ \t])[ \t]+([,.])")
_SPACED_HYPHEN = re.compile(r"(?<!\s)\s+[-–—]{1,3}\s+")
_EMAIL_CHARACTERS = r"a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\-‘’"
_EMAIL_WITH_SMART_QUOTES = re.compile(
    rf"(?<![{_EMAIL_CHARACTERS}])[{_EMAIL_CHARACTERS}]+@[^.@][^@\s]+"
)

# SmartyPants' quote rules, in the order it applies them. ``_OPENER`` is the context that
# makes a quote an opening one; ``_CLOSER`` a character after which a quote closes.
_OPENER = r"(\s|&nbsp;|--|&[mn]dash;|&#8211;|&#8212;|&#x201[34];)"
_CLOSER = r"([^ \t\r\n\[{(\-])"
_QUOTE_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\"'(?=\w)", "“‘"),
        (r"'\"(?=\w)", "‘“"),
        (r"\b'(?=\d{2}s)", "’"),
        (_OPENER + r"'(?=\w)", r"\1‘"),
        (_CLOSER + r"'(?!\s|s\b|\d)", r"\1’"),
        (_CLOSER + r"'(\s|s\b)", r"\1’\2"),
        (r"'", "‘"),
        (_OPENER + r"\"(?=\w)", r"\1“"),
        (r"\"(?=\s)", "”"),
        (_CLOSER + r"\"", r"\1”"),
        (r"\"", "“"),
    )
)
# SmartyPants turns these backslash escapes into numeric references and, when told to output
# Unicode, leaves them as references.
_SMARTYPANTS_ESCAPES = (
    ("\\\\", "&#92;"),
    ('\\"', "&#34;"),
    ("\\'", "&#39;"),
    ("\\.", "&#46;"),
    ("\\-", "&#45;"),
    ("\\`", "&#96;"),
)
_COMMENT_END = re.compile(r"--\s*>")
_SKIPPED_TAG = re.compile(r"<(/)?(pre|samp|code|tt|kbd|script|style|math|a)[^>]*>", re.I)


def _curl_quotes(text: str, previous_last_char: str = "") -> str:
    """SmartyPants' quote education for one run of text, with Unicode output."""
    if text in ("'", '"'):
        closing = bool(previous_last_char) and not previous_last_char.isspace()
        if text == "'":
            return "’" if closing else "‘"
        return "”" if closing else "“"
    for pattern, replacement in _QUOTE_RULES:
        text = pattern.sub(replacement, text)
    return text


def plain_typography(text: str) -> str:
    """The typography pass for text known to hold no markup."""
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = _curl_quotes(text)
    return _finish_typography(text)


def _finish_typography(text: str) -> str:
    text = _EMAIL_WITH_SMART_QUOTES.sub(
        lambda m: m.group(0).replace("‘", "'").replace("’", "'"), text
    )
    return _SPACED_HYPHEN.sub(" – ", text)


def _html_tokens(text: str) -> list[tuple[bool, str]]:
    """Split text into ``(is_tag, token)`` runs as SmartyPants does (comments count as tags).

    From the first ``<`` that starts no tag, the rest is text.
    """
    tokens: list[tuple[bool, str]] = []
    position = 0
    no_comment_end_from = len(text) + 1  # a failed search need not be repeated further on
    while (start := text.find("<", position)) >= 0:
        end = -1
        if text.startswith("<!--", start) and start + 4 < no_comment_end_from:
            closing = _COMMENT_END.search(text, start + 4)
            if closing is None:
                no_comment_end_from = start + 4
            else:
                end = closing.end()
        if end < 0:
            end = text.find(">", start + 1) + 1
            if end == 0:
                break
        if start > position:
            tokens.append((False, text[position:start]))
        tokens.append((True, text[start:end]))
        position = end
    if position < len(text):
        tokens.append((False, text[position:]))
    return tokens


def _smartypants(text: str) -> str:
    """SmartyPants over text that may hold tags: tags and the insides of code-like tags are kept."""
    out: list[str] = []
    skipping: list[str] = []
    previous_last_char = ""
    for is_tag, token in _html_tokens(text):
        if (
            is_tag
            and token.startswith("<!--")
            and "--" in token[4:].rstrip(">").rstrip().rstrip("-")
        ):
            is_tag = False
        if is_tag:
            out.append(token)
            skip = _SKIPPED_TAG.match(token)
            if skip and not skip.group(1):
                skipping.append(skip.group(2).lower())
            elif skip and skipping and skipping[-1] == skip.group(2).lower():
                skipping.pop()
            continue
        last_char = token[-1:]
        if not skipping:
            for escape, reference in _SMARTYPANTS_ESCAPES:
                token = token.replace(escape, reference)
            token = _curl_quotes(token, previous_last_char)
        previous_last_char = last_char
        out.append(token)
    return "".join(out)


def _normalise_whitespace(text: str) -> str:
    text = text.replace(NBSP, " ")
    for character in ZERO_WIDTH:
        text = text.replace(character, "")
    return " ".join(text.split())


def format_subject(text: str) -> str:
    """Notify's subject pass: no space before ``,``/``.``, smart quotes, spaced dashes, one-line.

    Like Notify (SmartyPants), backslash escapes such as ``\\.`` become numeric references.
    """
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = _finish_typography(_smartypants(text))
    return _normalise_whitespace(text)
