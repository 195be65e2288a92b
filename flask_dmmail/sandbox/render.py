"""GOV.UK Notify's template rules, as pure functions.

Placeholders and filling follow notifications-utils' ``field.py``; the subject typography
follows its ``do_nice_typography`` (with SmartyPants' quote rules); the email HTML follows
the markdown subset and the HTML of its email renderer; :func:`sanitise` follows the API's
``sanitise_content_for``. Written from the behaviour, not from their code.
"""

from __future__ import annotations

import html
import re
import string
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "fill",
    "format_subject",
    "missing_placeholders",
    "normalise_name",
    "placeholders",
    "render_email_html",
    "sanitise",
]

# --------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------

#: ``((name))`` or ``((name??conditional text))``: one or more characters other than
#: parentheses between doubled brackets.
_PLACEHOLDER = re.compile(r"\(\(([^()]+)\)\)")
_NAME_IGNORED = str.maketrans("", "", " _-")
_SHOW_CONDITIONAL = frozenset({"yes", "y", "true", "t", "1", "include", "show"})
_ZERO_WIDTH = "\u180e\u200b\u200c\u200d\u2060\ufeff"
_NBSP = "\u00a0"


def normalise_name(name: str) -> str:
    """The form placeholders and keys are matched in: no spaces, ``_`` or ``-``; lowercase."""
    return name.translate(_NAME_IGNORED).lower()


def _parts(inner: str) -> tuple[str, str | None]:
    """Split a placeholder's inside into its name and its conditional text (or None)."""
    name, sep, text = inner.partition("??")
    return name, (text if sep else None)


def placeholders(text: str | None) -> list[str]:
    """Placeholder names in order of first appearance, as spelled, one per normalised name."""
    if not text:
        return []
    found: dict[str, str] = {}
    for match in _PLACEHOLDER.finditer(text):
        name, _ = _parts(match.group(1))
        found.setdefault(normalise_name(name), name)
    return list(found.values())


def _by_normalised_name(personalisation: Mapping[str, Any] | None) -> dict[str, Any]:
    """Personalisation keyed by normalised name; a later spelling of a key wins."""
    return {normalise_name(key): value for key, value in (personalisation or {}).items()}


def missing_placeholders(
    subject: str | None, body: str, personalisation: Mapping[str, Any] | None
) -> list[str]:
    """Placeholders with no value (key absent or None): the subject's first, as spelled."""
    values = _by_normalised_name(personalisation)
    names: dict[str, str] = {}
    for name in placeholders(subject) + placeholders(body):
        names.setdefault(normalise_name(name), name)
    return [name for key, name in names.items() if values.get(key) is None]


def _strip_obscure_whitespace(value: str) -> str:
    for character in _ZERO_WIDTH + _NBSP:
        value = value.replace(character, "")
    return value.strip(string.whitespace)


def _as_text(value: Any) -> str:
    """A personalisation value as Notify puts it into a template."""
    if isinstance(value, list):
        items = [_strip_obscure_whitespace(str(item)) for item in value if item is not None]
        items = [item for item in items if item]
        if not items:
            return ""
        return "\n\n" + "\n".join(f"* {item}" for item in items)
    return str(value)


def _shows_conditional(value: Any) -> bool:
    return bool(value) and str(value).lower() in _SHOW_CONDITIONAL


def fill(text: str, personalisation: Mapping[str, Any] | None) -> str:
    """Replace placeholders with their values; those without a value are left as written."""
    values = _by_normalised_name(personalisation)

    def replace(match: re.Match[str]) -> str:
        name, conditional = _parts(match.group(1))
        value = values.get(normalise_name(name))
        if value is None:
            return match.group(0)
        if conditional is not None:
            return conditional if _shows_conditional(value) else ""
        return _as_text(value)

    return _PLACEHOLDER.sub(replace, text)


# --------------------------------------------------------------------------------------
# Typography (utils' do_nice_typography)
# --------------------------------------------------------------------------------------

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


def _plain_typography(text: str) -> str:
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
    text = text.replace(_NBSP, " ")
    for character in _ZERO_WIDTH:
        text = text.replace(character, "")
    return " ".join(text.split())


def format_subject(text: str) -> str:
    """Notify's subject pass: no space before ``,``/``.``, smart quotes, spaced dashes, one-line.

    Like Notify (SmartyPants), backslash escapes such as ``\\.`` become numeric references.
    """
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = _finish_typography(_smartypants(text))
    return _normalise_whitespace(text)


# --------------------------------------------------------------------------------------
# Email HTML (Notify's markdown subset and its email renderer's HTML)
# --------------------------------------------------------------------------------------

_TEXT_STYLE = "font-size: 19px; line-height: 25px; color: #0B0C0C;"
_P_OPEN = f'<p style="Margin: 0 0 20px 0; {_TEXT_STYLE}">'
_H2_OPEN = (
    '<h2 style="Margin: 0 0 15px 0; padding: 10px 0 0 0; font-size: 27px; line-height: 35px; '
    'font-weight: bold; color: #0B0C0C;">'
)
_H3_OPEN = (
    '<h3 style="Margin: 0 0 15px 0; padding: 10px 0 0 0; font-size: 19px; line-height: 25px; '
    'font-weight: bold; color: #0B0C0C;">'
)
_HR = '<hr style="border: 0; height: 1px; background: #B1B4B6; Margin: 30px 0 30px 0;">'
_LIST_OPEN = (
    '<table role="presentation" style="padding: 0 0 20px 0;"><tr>'
    '<td style="font-family: Helvetica, Arial, sans-serif;">'
)
_LIST_CLOSE = "</td></tr></table>"
_UL_OPEN = '<ul style="Margin: 0 0 0 20px; padding: 0; list-style-type: disc;">'
_OL_OPEN = '<ol style="Margin: 0 0 0 20px; padding: 0; list-style-type: decimal;">'
_LI_OPEN = f'<li style="Margin: 5px 0 5px; padding: 0 0 0 5px; {_TEXT_STYLE}">'
_QUOTE_OPEN = (
    '<blockquote style="Margin: 0 0 20px 0; border-left: 10px solid #B1B4B6; '
    'padding: 15px 0 0.1px 15px; font-size: 19px; line-height: 25px;">'
)
_LINK_STYLE = "word-wrap: break-word; color: #1D70B8;"

_HRULE = re.compile(r" {0,3}[-*_](?: *[-*_]){2,} *")
_HEADING = re.compile(r" *(#{1,6})(.+)")
_SETEXT_UNDERLINE = re.compile(r" *(?:=+|-+) *")
_QUOTE_START = re.compile(r" *\^.")
_QUOTE_MARK = re.compile(r"^ *\^ ?", re.M)
_BULLET = re.compile(r"( *)([•*-]|\d+\.)")
_BULLET_PREFIX = re.compile(r"^ *(?:[•*-]|\d+\.)")

_INLINE = re.compile(
    r"(?P<escape>\\[\\`*{}\[\]()#+\-.!_>~|])"
    r"|(?P<link>(?P<image>!)?\[(?P<label>(?:\[[^\[\]^]*\]|[^\[\]])*)\]"
    r"\(\s*(?:<(?P<angled>[^<>\n]*)>|(?P<href>[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*))"
    r"(?:\s+(?:\"(?P<title>[^\"\n]*)\"|'(?P<title2>[^'\n]*)'))?\s*\))"
    r"|(?P<url>https?://[^\s<]+[^<.,:\"')\]\s])"
    r"|(?P<br>\n)"
)
_BLOCKED_SCHEMES = ("javascript:", "vbscript:", "data:")


def _safe_href(url: str) -> str:
    """A link target for an ``href``: script-running schemes become empty, all of it escaped."""
    squashed = re.sub(r"[^a-z0-9/:]+", "", url.lower().strip("\x00\x1a \n\r\t"))
    if squashed.startswith(_BLOCKED_SCHEMES):
        return ""
    return html.escape(url, quote=True)


def _inline(text: str, in_link: bool = False) -> str:
    """Render inline markdown: escapes, links, bare URLs and hard line breaks."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            plain = "".join(run)
            out.append(html.escape(plain if in_link else _plain_typography(plain)))
            run.clear()

    text = "\n".join(line.rstrip(" ") for line in text.split("\n"))
    position = 0
    for match in _INLINE.finditer(text):
        run.append(text[position : match.start()])
        position = match.end()
        if match.group("escape"):
            run.append(match.group("escape")[1])
        elif match.group("link"):
            flush()
            if match.group("image"):
                continue
            title = match.group("title") or match.group("title2")
            href = match.group("href")
            if href is None:
                href = match.group("angled")
            title_attribute = f' title="{html.escape(title)}"' if title else ""
            out.append(
                f'<a style="{_LINK_STYLE}" href="{_safe_href(href)}"'
                f"{title_attribute}>{_inline(match.group('label'), in_link=True)}</a>"
            )
        elif match.group("url"):
            if in_link:
                run.append(match.group("url"))
                continue
            flush()
            url = match.group("url")
            href = urllib.parse.quote(urllib.parse.unquote(url), safe=":/?#=&;")
            out.append(
                f'<a style="{_LINK_STYLE}" href="{html.escape(href)}">{html.escape(url)}</a>'
            )
        else:
            flush()
            out.append("<br />")
    run.append(text[position:])
    flush()
    return "".join(out)


def _heading_text(rest: str) -> str:
    """A heading's text: without surrounding spaces or closing ``#``s (at least a character)."""
    text = rest.lstrip(" ").rstrip(" ").rstrip("#").rstrip(" ")
    return text or rest.lstrip(" ")[:1] or rest[:1]


def _paragraph(text: str) -> str:
    return f"{_P_OPEN}{text}</p>" if text.strip() else ""


def _heading(level: int, text: str) -> str:
    if level == 1:
        return f"{_H2_OPEN}{_inline(text)}</h2>"
    if level == 2:
        return f"{_H3_OPEN}{_inline(text)}</h3>"
    return _paragraph(_inline(text))


#: How deep inset text and lists may nest (Notify has no limit; this keeps recursion bounded).
_MAX_NESTING = 40


def _is_blank(line: str) -> bool:
    return not line.strip()


class _Blocks:
    """A small block parser for Notify's markdown subset, over a list of lines."""

    def __init__(
        self, lines: list[str], *, in_list: bool = False, loose: bool = False, depth: int = 0
    ) -> None:
        self.lines = lines
        self.in_list = in_list
        self.loose = loose
        #: Inset text and lists nest only so deep; past that they are plain text.
        self.can_nest = depth < _MAX_NESTING
        self.depth = depth

    def _setext_at(self, i: int) -> bool:
        return (
            i + 1 < len(self.lines)
            and not _is_blank(self.lines[i])
            and _SETEXT_UNDERLINE.fullmatch(self.lines[i + 1]) is not None
        )

    def _starts_block(self, i: int) -> bool:
        line = self.lines[i]
        return bool(
            _HRULE.fullmatch(line)
            or (not self.in_list and _HEADING.fullmatch(line))
            or (self.can_nest and (_QUOTE_START.match(line) or _BULLET.match(line)))
            or self._setext_at(i)
        )

    def render(self) -> str:
        out: list[str] = []
        lines = self.lines
        i = 0
        while i < len(lines):
            line = lines[i]
            if _is_blank(line):
                i += 1
            elif _HRULE.fullmatch(line):
                out.append(_HR)
                i += 1
            elif not self.in_list and (heading := _HEADING.fullmatch(line)):
                out.append(_heading(len(heading.group(1)), _heading_text(heading.group(2))))
                i += 1
            elif self._setext_at(i):
                level = 1 if lines[i + 1].strip().startswith("=") else 2
                out.append(_heading(level, line))
                i += 2
            elif self.can_nest and _QUOTE_START.match(line):
                i = self._quote(i, out)
            elif self.can_nest and _BULLET.match(line):
                i = self._list(i, out)
            else:
                end = i + 1
                while (
                    end < len(lines) and not _is_blank(lines[end]) and not self._starts_block(end)
                ):
                    end += 1
                text = _inline("\n".join(lines[i:end]))
                out.append(_paragraph(text) if self.loose or not self.in_list else text)
                i = end
        return "".join(out)

    def _quote(self, i: int, out: list[str]) -> int:
        lines = self.lines
        end = i
        while end < len(lines):
            while end < len(lines) and not _is_blank(lines[end]):
                end += 1
            following = end
            while following < len(lines) and _is_blank(lines[following]):
                following += 1
            if following < len(lines) and _QUOTE_START.match(lines[following]):
                end = following
            else:
                break
        inner = _QUOTE_MARK.sub("", "\n".join(lines[i:end]))
        body = _Blocks(inner.split("\n"), depth=self.depth + 1).render()
        out.append(f"{_QUOTE_OPEN}{body}</blockquote>")
        return end

    def _list(self, i: int, out: list[str]) -> int:
        lines = self.lines
        first = _BULLET.match(lines[i])
        assert first is not None
        indent = first.group(1)
        ordered = first.group(2)[0].isdigit()
        continues_after_gap = re.compile(re.escape(indent) + r"(?:[•*-]|\d+\.) ")
        end = i + 1
        while end < len(lines):
            if not _is_blank(lines[end]):
                if re.fullmatch(r" *(?:[-*_] *){3,}", lines[end]):
                    break
                end += 1
                continue
            following = end
            while following < len(lines) and _is_blank(lines[following]):
                following += 1
            if following < len(lines) and (
                lines[following].startswith(" ") or continues_after_gap.match(lines[following])
            ):
                end = following
            else:
                break
        items: list[list[str]] = []
        item_indent = ""
        for line in lines[i:end]:
            bullet = _BULLET.match(line)
            if not items or (bullet and bullet.group(1) == item_indent):
                items.append([line])
                item_indent = bullet.group(1) if bullet else ""
            else:
                items[-1].append(line)
        rendered: list[str] = []
        next_loose = False
        for number, item_lines in enumerate(items):
            item = "\n".join(item_lines)
            loose = next_loose or re.search(r"\n\n(?!\s*$)", item) is not None
            if number != len(items) - 1:
                next_loose = item.endswith("\n")
                loose = loose or next_loose
            length = len(item)
            item = _BULLET_PREFIX.sub("", item, count=1)
            if "\n " in item:
                item = re.sub(f"^ {{1,{length - len(item)}}}", "", item, flags=re.M)
            body = _Blocks(
                item.split("\n"), in_list=True, loose=loose, depth=self.depth + 1
            ).render()
            rendered.append(f"{_LI_OPEN}{body.strip()}</li>")
        tag_open, tag_close = (_OL_OPEN, "</ol>") if ordered else (_UL_OPEN, "</ul>")
        out.append(f"{_LIST_OPEN}{tag_open}{''.join(rendered)}{tag_close}{_LIST_CLOSE}")
        return end


def render_email_html(body: str) -> str:
    """Render a filled email body (Notify markdown) to the HTML Notify's email renderer makes.

    Headings ``#``/``##``, lists (``*``, ``-``, ``•``, ``1.``), ``^`` inset text, ``---``
    rules, ``[text](url)`` links, bare http(s) URLs, paragraphs and line breaks. All text is
    HTML-escaped, so no markup in a body or its personalisation reaches the page.
    """
    text = body.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "")
    text = text.expandtabs(4).replace(_NBSP, " ").replace("\u2424", "\n")
    lines = ["" if _is_blank(line) else line for line in text.split("\n")]
    return _Blocks(lines).render()


# --------------------------------------------------------------------------------------
# sanitise_content_for
# --------------------------------------------------------------------------------------

#: utils' URL pattern: an optional http(s) scheme, dotted (sub)domains, a letters-only
#: top-level domain, then an optional path, query or fragment. (Starting only at the front
#: of a run of name characters finds the same URLs in linear time.)
_URL = re.compile(r"(?i)\b(?<![\w\-@.])(https?://)?([\w\-]+\.)+([a-z]{2,63})(?!@)\b([/?#][^<\s]*)?")
_MARKDOWN_CHARACTERS = re.compile(r"([`*_(){}\[\]<>#+\-.!|\\])")


def _without_urls(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None and match.group(4) is None:
            return match.group(0).replace(".", ". ")
        return ""

    return _URL.sub(replace, value)


def _sanitise_value(value: str) -> str:
    return _MARKDOWN_CHARACTERS.sub(r"\\\1", _without_urls(value))


def _sanitised(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [clean(item) if isinstance(item, str) else item for item in value]
    return value


def sanitise(
    personalisation: Mapping[str, Any], keys: Sequence[str]
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Apply ``sanitise_content_for``: drop URLs from the listed values, then escape markdown.

    A bare hostname (``evil.com``) becomes ``evil. com``; any other URL is deleted. Then each
    of ``\\`*_(){}[]<>#+-.!|`` gets a backslash. Keys match by normalised name; values that
    are not strings (or lists of strings) are left alone. Returns the new personalisation and
    ``{key: {"unsanitised": old, "sanitised": new}}`` for each value that changed.
    """
    wanted = {normalise_name(key) for key in keys}
    result = dict(personalisation)
    changes: dict[str, dict[str, str]] = {}
    for key, value in personalisation.items():
        if normalise_name(key) not in wanted:
            continue
        new_value = _sanitised(value, _sanitise_value)
        if new_value != value:
            result[key] = new_value
            changes[key] = {"unsanitised": value, "sanitised": new_value}
    return result, changes
