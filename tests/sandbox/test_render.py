"""Notify's template rules in flask_dmmail.sandbox.render."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_dmmail.sandbox.render import (
    fill,
    format_subject,
    missing_placeholders,
    normalise_name,
    placeholders,
    render_email_html,
    sanitise,
)

# --------------------------------------------------------------------------------------
# normalise_name / placeholders
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("First Name", "firstname", id="space-and-case"),
        pytest.param("FIRST_NAME", "firstname", id="underscore"),
        pytest.param("first-name", "firstname", id="hyphen"),
        pytest.param(" first name ", "firstname", id="outer-spaces"),
        pytest.param("first\tname", "first\tname", id="tab-is-not-ignored"),
    ],
)
def test_normalise_name(name: str, expected: str) -> None:
    assert normalise_name(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, [], id="none"),
        pytest.param("", [], id="empty"),
        pytest.param("no placeholders", [], id="plain"),
        pytest.param("((a)) ((b)) ((a))", ["a", "b"], id="order-and-dedupe"),
        pytest.param("((First Name)) ((first_name))", ["First Name"], id="dedupe-normalised"),
        pytest.param("((show??Some text)) ((show))", ["show"], id="conditional-name"),
        pytest.param("((a??b??c))", ["a"], id="double-conditional"),
        pytest.param("(( name ))", [" name "], id="spelled-as-written"),
        pytest.param("((a(b)))", [], id="nested-parentheses-not-a-placeholder"),
        pytest.param("(((name)))", ["name"], id="tripled-brackets"),
        pytest.param("((name)", [], id="unclosed"),
        pytest.param("(())", [], id="empty-name"),
        pytest.param("((line\nbreak))", ["line\nbreak"], id="newline-in-name"),
    ],
)
def test_placeholders(text: str | None, expected: list[str]) -> None:
    assert placeholders(text) == expected


# --------------------------------------------------------------------------------------
# missing_placeholders
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "personalisation", "expected"),
    [
        pytest.param("Hi", "Hello", None, [], id="none-needed"),
        pytest.param(
            "((date))", "((first_name))", None, ["date", "first_name"], id="subject-first"
        ),
        pytest.param(
            "((date))", "((first_name)) ((date))", {}, ["date", "first_name"], id="deduped"
        ),
        pytest.param("", "((a))", {"a": ""}, [], id="empty-string-allowed"),
        pytest.param("", "((a))", {"a": None}, ["a"], id="none-is-missing"),
        pytest.param("", "((a))", {"a": 0}, [], id="zero-is-a-value"),
        pytest.param("", "((First Name))", {"first_name": "A"}, [], id="normalised-match"),
        pytest.param("", "((a??yes))", {}, ["a"], id="conditional-required"),
        pytest.param("", "((a))", {"a": "x", "extra": "y"}, [], id="extra-keys-ignored"),
        pytest.param(None, "((a))", {}, ["a"], id="no-subject"),
        pytest.param("((Name))", "((name))", {}, ["Name"], id="spelling-from-subject"),
    ],
)
def test_missing_placeholders(
    subject: str | None,
    body: str,
    personalisation: dict[str, Any] | None,
    expected: list[str],
) -> None:
    assert missing_placeholders(subject, body, personalisation) == expected


# --------------------------------------------------------------------------------------
# fill
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "personalisation", "expected"),
    [
        pytest.param("Hi ((name))", {"name": "Ann"}, "Hi Ann", id="simple"),
        pytest.param("Hi ((First Name))", {"FIRST-NAME": "Ann"}, "Hi Ann", id="insensitive"),
        pytest.param("((n))", {"n": 3}, "3", id="number"),
        pytest.param("((n))", {"n": True}, "True", id="bool"),
        pytest.param("((n))", {"n": ""}, "", id="empty-string"),
        pytest.param("((n))", {"n": "<b>&</b>"}, "<b>&</b>", id="not-html-escaped"),
        pytest.param("((n))", {"n": "**x**"}, "**x**", id="markdown-left-raw"),
        pytest.param("((n))", {}, "((n))", id="missing-left-as-is"),
        pytest.param("((n))", None, "((n))", id="no-personalisation"),
        pytest.param("((n))", {"n": None}, "((n))", id="none-left-as-is"),
        pytest.param("((n??Shown))", {}, "((n??Shown))", id="missing-conditional-left"),
        pytest.param("((n??Shown))", {"n": "yes"}, "Shown", id="conditional-yes"),
        pytest.param("((n??Shown))", {"n": "Y"}, "Shown", id="conditional-Y"),
        pytest.param("((n??Shown))", {"n": "TRUE"}, "Shown", id="conditional-TRUE"),
        pytest.param("((n??Shown))", {"n": "t"}, "Shown", id="conditional-t"),
        pytest.param("((n??Shown))", {"n": 1}, "Shown", id="conditional-int-1"),
        pytest.param("((n??Shown))", {"n": "include"}, "Shown", id="conditional-include"),
        pytest.param("((n??Shown))", {"n": "show"}, "Shown", id="conditional-show"),
        pytest.param("((n??Shown))", {"n": True}, "Shown", id="conditional-bool-true"),
        pytest.param("((n??Shown))", {"n": False}, "", id="conditional-bool-false"),
        pytest.param("((n??Shown))", {"n": "no"}, "", id="conditional-no"),
        pytest.param("((n??Shown))", {"n": ""}, "", id="conditional-empty"),
        pytest.param("((n??Shown))", {"n": "yes "}, "", id="conditional-not-stripped"),
        pytest.param("((n??a??b))", {"n": "yes"}, "a??b", id="conditional-with-question-marks"),
        pytest.param("((n))", {"n": ["a", "b"]}, "\n\n* a\n* b", id="list"),
        pytest.param("((n))", {"n": [" a ", None, "", "  ", 2]}, "\n\n* a\n* 2", id="list-cleaned"),
        pytest.param("((n))", {"n": []}, "", id="empty-list"),
        pytest.param("((n))", {"n": [None, " "]}, "", id="list-of-blanks"),
        pytest.param("(((n)))", {"n": "x"}, "(x)", id="tripled-brackets"),
        pytest.param("((a(b)))", {"a(b)": "x", "a": "y"}, "((a(b)))", id="nested-not-filled"),
        pytest.param("(( n ))", {"n": "x"}, "x", id="spaces-in-name"),
        pytest.param("((a\nb))", {"ab": "x"}, "((a\nb))", id="newline-in-name-not-ignored"),
        pytest.param("((a)) ((b))", {"a": "((b))", "b": "B"}, "((b)) B", id="no-refill"),
        pytest.param("((n))", {"n": "\\1 \\g<0>"}, "\\1 \\g<0>", id="backslashes-not-regex-groups"),
        pytest.param("((k))", {"K": "first", "k": "second"}, "second", id="later-spelling-wins"),
    ],
)
def test_fill(text: str, personalisation: dict[str, Any] | None, expected: str) -> None:
    assert fill(text, personalisation) == expected


# --------------------------------------------------------------------------------------
# format_subject
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Hello , world .", "Hello, world.", id="space-before-punctuation"),
        pytest.param("Hello ! world ?", "Hello ! world ?", id="only-comma-and-full-stop"),
        pytest.param('"Quoted" words', "“Quoted” words", id="double-quotes"),
        pytest.param("It's 'single'", "It’s ‘single’", id="single-quotes"),
        pytest.param("the '80s", "the ‘80s", id="decade-after-space"),
        pytest.param("rock'80s", "rock’80s", id="decade-after-word"),
        pytest.param("He said \"'hi' there\"", "He said “‘hi’ there”", id="nested-quotes"),
        pytest.param("a - b", "a – b", id="hyphen-to-en-dash"),
        pytest.param("a -- b", "a – b", id="double-hyphen"),
        pytest.param("a — b", "a – b", id="em-dash"),
        pytest.param("well-known", "well-known", id="hyphen-in-word-kept"),
        pytest.param("  lots \n of\t space  ", "lots of space", id="whitespace-collapsed"),
        pytest.param("zero\u200bwidth\u00a0nbsp", "zerowidth nbsp", id="obscure-whitespace"),
        pytest.param(
            "Mail o'brien@example.com", "Mail o'brien@example.com", id="email-keeps-apostrophe"
        ),
        pytest.param('Say \\"hi\\"', "Say &#34;hi&#34;", id="smartypants-escapes"),
        pytest.param("evil\\. com", "evil&#46; com", id="sanitised-full-stop"),
        pytest.param('<b>"x"</b>', "<b>“x”</b>", id="tags-kept"),
        pytest.param('<code>"x"</code> "y"', '<code>"x"</code> “y”', id="code-skipped"),
        pytest.param('<!-- "x" --> "y"', '<!-- "x" --> “y”', id="comment-kept"),
        pytest.param('a < "b"', "a < “b”", id="unclosed-angle-is-text"),
        pytest.param('<a href="x">"y"</a> "z"', '<a href="x">"y"</a> “z”', id="link-skipped"),
        pytest.param("", "", id="empty"),
    ],
)
def test_format_subject(text: str, expected: str) -> None:
    assert format_subject(text) == expected


# --------------------------------------------------------------------------------------
# render_email_html
# --------------------------------------------------------------------------------------


def _tags(markup: str) -> list[str]:
    """The element names in order, open and close, ignoring attributes."""
    return re.findall(r"</?[a-z0-9]+", markup)


def _text(markup: str) -> str:
    return re.sub(r"<[^>]+>", "|", markup)


def _list(kind: str, *items: list[str]) -> list[str]:
    """The tags of a Notify list (a presentation table around ``ul``/``ol``) of items."""
    inner = [tag for item in items for tag in ["<li", *item, "</li"]]
    return ["<table", "<tr", "<td", f"<{kind}", *inner, f"</{kind}", "</td", "</tr", "</table"]


P = ["<p", "</p"]
_ALL_ESCAPED = "".join("\\" + c for c in "`*_(){}[]<>#+-.!|\\")


@pytest.mark.parametrize(
    ("body", "tags"),
    [
        pytest.param("Hello", ["<p", "</p"], id="paragraph"),
        pytest.param("# Title", ["<h2", "</h2"], id="h1-becomes-h2"),
        pytest.param("## Sub", ["<h3", "</h3"], id="h2-becomes-h3"),
        pytest.param("### Small", ["<p", "</p"], id="h3-becomes-paragraph"),
        pytest.param("Title\n===", ["<h2", "</h2"], id="setext-h1"),
        pytest.param("---", ["<hr"], id="rule"),
        pytest.param("* * *", ["<hr"], id="spaced-rule"),
        pytest.param("* a\n* b", _list("ul", [], []), id="star-list"),
        pytest.param("- a", _list("ul", []), id="dash-list"),
        pytest.param("• a", _list("ul", []), id="bullet-list"),
        pytest.param("•a", _list("ul", []), id="bullet-no-space"),
        pytest.param("1. a\n2. b", _list("ol", [], []), id="numbered-list"),
        pytest.param(
            "^ Inset",
            ["<div", "<blockquote", "<p", "</p", "</blockquote", "</div"],
            id="inset-text",
        ),
        pytest.param("a\nb", ["<p", "<br", "</p"], id="line-break"),
        pytest.param("a\n\nb", ["<p", "</p", "<p", "</p"], id="two-paragraphs"),
        pytest.param("Some **bold** _it_ `code`", ["<p", "</p"], id="no-emphasis-or-code"),
        pytest.param("|a|b|\n|---|---|\n|1|2|", ["<p", "<br", "<br", "</p"], id="no-tables"),
        pytest.param("", [], id="empty"),
        pytest.param("   \n\n  ", [], id="blank"),
        pytest.param("![alt](https://x.test/i.png)", [], id="images-dropped"),
        pytest.param("* a\n  * b", _list("ul", _list("ul", [])), id="nested-list"),
        pytest.param("* a\n\n* b", _list("ul", P, P), id="loose-list"),
        pytest.param("Intro\n\n* a\n\nAfter", [*P, *_list("ul", []), *P], id="list-in-text"),
        pytest.param("Para\n# Heading", ["<p", "</p", "<h2", "</h2"], id="heading-ends-paragraph"),
    ],
)
def test_render_structure(body: str, tags: list[str]) -> None:
    assert _tags(render_email_html(body)) == tags


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(
            "[GOV.UK](https://www.gov.uk)",
            '<a style="word-wrap: break-word; color: #1D70B8;" href="https://www.gov.uk">GOV.UK</a>',
            id="link",
        ),
        pytest.param(
            '[x](https://a.test "Title")', 'href="https://a.test" title="Title">x</a>', id="title"
        ),
        pytest.param(
            "See https://a.test/b?c=1&d=2.",
            'href="https://a.test/b?c=1&amp;d=2">https://a.test/b?c=1&amp;d=2</a>.',
            id="bare-url-trailing-stop",
        ),
        pytest.param("(https://a.test/x)", 'x">https://a.test/x</a>)', id="bare-url-paren"),
        pytest.param('https://a.test/"q"', '"https://a.test/%22q">', id="bare-url-quote-encoded"),
        pytest.param("[x](javascript:alert(1))", 'href="">', id="javascript-blocked"),
        pytest.param("[x](JaVaScRiPt:alert(1))", 'href="">', id="javascript-any-case"),
        pytest.param("[x](\x00javascript:alert(1))", 'href="">', id="javascript-control-char"),
        pytest.param("[x](<javascript:alert(1)>)", 'href="">', id="javascript-angled"),
        pytest.param("[x](<https://a.test/a b>)", 'href="https://a.test/a b">x<', id="angled"),
        pytest.param("[x](https://a.test/a_(b))", 'href="https://a.test/a_(b)">x<', id="parens"),
        pytest.param("[x](data:text/html,hi)", 'href="">', id="data-blocked"),
        pytest.param(
            '[x](https://a.test/"onclick=x)', '"https://a.test/&quot;onclick=x"', id="href-quoted"
        ),
        pytest.param("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;", id="html-escaped"),
        pytest.param("Tom & Jerry", "Tom &amp; Jerry", id="ampersand"),
        pytest.param("\\[not a link\\]\\(\\)", ">[not a link]()</p>", id="escapes"),
        pytest.param("evil\\. com", ">evil. com</p>", id="sanitised-hostname"),
        pytest.param('"Quoted" - it\'s', ">“Quoted” – it’s</p>", id="typography"),
        pytest.param("Hello , world", ">Hello, world</p>", id="space-before-comma"),
        pytest.param(
            '[a "b"](https://a.test)', ">a &quot;b&quot;</a>", id="no-typography-in-links"
        ),
        pytest.param("# A *title*", ">A *title*</h2>", id="heading-text"),
        pytest.param("Title\n---", ">Title</h3>", id="setext-h2"),
        pytest.param("* one\n* two", ">one</li>", id="list-item-text"),
        pytest.param("1.5 million", ">5 million</li>", id="number-full-stop-is-a-list"),
        pytest.param("^ one\ntwo", ">one<br />two</p></blockquote>", id="inset-lazy-line"),
    ],
)
def test_render_content(body: str, fragment: str) -> None:
    assert fragment in render_email_html(body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("^" * 3000 + " deep", id="inset"),
        pytest.param("* " * 3000 + "deep", id="list"),
        pytest.param("".join(" " * i + "* x\n" for i in range(600)), id="indented-list"),
    ],
)
def test_render_deep_nesting_is_bounded(body: str) -> None:
    html = render_email_html(body)
    assert html.count("<blockquote") + html.count("<ul") == 40
    assert "deep" in html or "x" in html


def test_render_filled_list_personalisation() -> None:
    body = fill("You need:((items))\n\nThanks", {"items": ["a passport", "a photo"]})
    html = render_email_html(body)
    assert _tags(html) == [*P, *_list("ul", [], []), *P]
    assert "a passport" in html and "a photo" in html


def test_render_sanitised_personalisation_shows_no_link() -> None:
    personalisation, _ = sanitise(
        {"link": "please [click](https://evil.test) or evil.com"}, ["link"]
    )
    html = render_email_html(fill("Hi ((link))", personalisation))
    assert "<a " not in html
    assert "please [click]() or evil. com" in _text(html)


# --------------------------------------------------------------------------------------
# sanitise
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "Amala, please [click this evil link](https://evil.link)",
            "Amala, please \\[click this evil link\\]\\(\\)",
            id="notify-example",
        ),
        pytest.param("evil.com", "evil\\. com", id="bare-hostname"),
        pytest.param("www.evil.co.uk", "www\\. evil\\. co\\. uk", id="bare-subdomains"),
        pytest.param("go to https://evil.com now", "go to  now", id="scheme-deleted"),
        pytest.param("evil.com/login here", " here", id="path-deleted"),
        pytest.param("http://evil.com?x=1", "", id="query-deleted"),
        pytest.param("mail me@example.com", "mail me@example\\.com", id="email-not-a-url"),
        pytest.param("£3.50", "£3\\.50", id="number-not-a-url"),
        pytest.param("`*_(){}[]<>#+-.!|\\", _ALL_ESCAPED, id="all"),
        pytest.param("plain words", "plain words", id="unchanged"),
        pytest.param("", "", id="empty"),
    ],
)
def test_sanitise_value(value: str, expected: str) -> None:
    new, _ = sanitise({"k": value}, ["k"])
    assert new["k"] == expected


def test_sanitise_reports_only_changed_listed_keys() -> None:
    personalisation = {
        "First_Name": "[x](https://evil.test)",
        "plain": "hello",
        "unlisted": "evil.com",
        "number": 3,
        "items": ["ab.cd", None],
    }
    new, changes = sanitise(personalisation, ["first name", "PLAIN", "number", "items", "absent"])
    assert new == {
        "First_Name": "\\[x\\]\\(\\)",
        "plain": "hello",
        "unlisted": "evil.com",
        "number": 3,
        "items": ["ab\\. cd", None],
    }
    assert changes == {
        "First_Name": {"unsanitised": "[x](https://evil.test)", "sanitised": "\\[x\\]\\(\\)"},
        "items": {"unsanitised": ["ab.cd", None], "sanitised": ["ab\\. cd", None]},
    }
    assert personalisation["First_Name"] == "[x](https://evil.test)", "input not mutated"


def test_sanitise_nothing_listed() -> None:
    assert sanitise({"a": "evil.com"}, []) == ({"a": "evil.com"}, {})


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

_names = st.text(alphabet=st.characters(blacklist_characters="()"), min_size=1, max_size=12)


@given(template=st.text(max_size=200), values=st.dictionaries(_names, st.text(max_size=30)))
def test_fill_never_raises_and_leaves_nothing_missing(
    template: str, values: dict[str, str]
) -> None:
    personalisation = {name: values.get(name, "v") for name in placeholders(template)}
    personalisation.update(values)
    assert missing_placeholders(None, template, personalisation) == []
    filled = fill(template, personalisation)
    assert isinstance(filled, str)


@given(name=_names, value=st.text(max_size=30))
def test_fill_puts_the_value_in(name: str, value: str) -> None:
    assert fill(f"<(({name}))>", {name: value}) == f"<{value}>" or "??" in name


@given(st.text(max_size=300))
def test_render_never_emits_a_script_tag(body: str) -> None:
    html = render_email_html(body).lower()
    assert "<script" not in html
    assert 'href="javascript' not in html


@given(st.text(alphabet=st.sampled_from(list("<>&\"'[]()^#*-•1. \nscriptjava:/")), max_size=200))
def test_render_escapes_all_markup(body: str) -> None:
    html = render_email_html(body)
    allowed = {"p", "h2", "h3", "hr", "table", "tr", "td", "ul", "ol", "li", "a", "br"}
    allowed.update(("blockquote", "div"))
    for tag in re.findall(r"</?([a-zA-Z0-9]+)", html):
        assert tag in allowed
    assert 'href="javascript' not in html.lower()


@given(st.dictionaries(_names, st.text(max_size=40)))
def test_sanitised_values_make_no_links(personalisation: dict[str, str]) -> None:
    new, changes = sanitise(personalisation, list(personalisation))
    for key, value in new.items():
        # Like Notify's, the sanitiser leaves a URL with no dotted host (http://localhost).
        if "http" not in value.lower():
            assert "<a " not in render_email_html(value), key
    assert set(changes) <= set(personalisation)


@given(st.text(max_size=100))
def test_format_subject_is_one_trimmed_line(text: str) -> None:
    subject = format_subject(text)
    assert "\n" not in subject
    assert subject == subject.strip()
