"""Notify's email HTML: its markdown subset, rendered to the HTML of its email renderer.

:func:`render_email_html` turns a filled email body into what the recipient sees (the outbox
page and ``POST /v2/template/{id}/preview`` use it). Written from the behaviour, not from
notifications-utils' code.
"""

from __future__ import annotations

import html
import re
import urllib.parse

from .placeholders import NBSP
from .typography import plain_typography

__all__ = ["render_email_html"]


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
# notifications-utils' NotifyEmailMarkdownRenderer joins two declarations of the list item
# and of the inset text without a space ("19px;line-height", "#B1B4B6;padding"), and wraps
# inset text in a div that carries its bottom margin; kept byte for byte.
_LI_OPEN = (
    '<li style="Margin: 5px 0 5px; padding: 0 0 0 5px; font-size: 19px;'
    'line-height: 25px; color: #0B0C0C;">'
)
_QUOTE_OPEN = (
    '<div style="Margin: 0 0 20px 0;"><blockquote style="Margin: 0; border-left: 10px solid '
    '#B1B4B6;padding: 15px 0 0.1px 15px; font-size: 19px; line-height: 25px;">'
)
_QUOTE_CLOSE = "</blockquote></div>"
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
            out.append(html.escape(plain if in_link else plain_typography(plain)))
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
        out.append(f"{_QUOTE_OPEN}{body}{_QUOTE_CLOSE}")
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
    text = text.expandtabs(4).replace(NBSP, " ").replace("\u2424", "\n")
    lines = ["" if _is_blank(line) else line for line in text.split("\n")]
    return _Blocks(lines).render()
