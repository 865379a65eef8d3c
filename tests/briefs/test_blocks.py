"""Markup parsing and Slack's message limits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from briefs import blocks as bk
from briefs.render import Renderer
from tests.briefs import samples
from tests.briefs.limits import assert_message_ok, words


def huge_brief() -> dict:
    ctx = samples.persona()
    persona = ctx["segment"]["persona"]
    persona["talking_points"] = [
        f"Point {i}: show how the team dashboard saves time for {i} reviewers & more"
        for i in range(200)
    ]
    persona["goals"] = [f"Goal number {i} with <angle> brackets" for i in range(80)]
    ctx["segment"]["rationale"] = " ".join(f"word{i}&x" for i in range(1500))[:10_000]
    ctx["segment"]["kpis"] = [f"kpi_{i}" for i in range(30)]
    ctx["stats"]["kpis"] = {f"kpi_{i}": i * 1.5 for i in range(30)}
    return ctx


def test_parse_groups_fields_and_buttons_and_continues_sections() -> None:
    parts = bk.parse(
        "<header>Title\n"
        "loose line\n"
        '<field label="A">1\n'
        '<field label="B \\"b\\"">2\n'
        '<button action=x value="a|b c" style=primary>Go\n'
        "<button action=y>Stop\n"
    )
    blocks = bk.to_blocks(parts)
    assert [b["type"] for b in blocks] == ["header", "section", "section", "actions"]
    assert blocks[1]["text"]["text"] == "loose line"
    assert [f["text"] for f in blocks[2]["fields"]] == ["*A*\n1", '*B "b"*\n2']
    go, stop = blocks[3]["elements"]
    assert (go["action_id"], go["value"], go["style"]) == ("x", "a|b c", "primary")
    assert stop["action_id"] == "y" and "value" not in stop


def test_blank_runs_collapse_and_empty_sections_vanish() -> None:
    parts = bk.parse("<section>\n\n\n<section>a\n\n\n\nb\n\n")
    assert [p.text for p in parts] == ["a\n\nb"]


def test_mention_at_line_start_is_text_not_a_directive() -> None:
    (part,) = bk.parse("<@U0123> approved\n<#C0123> too")
    assert part.kind == "section" and part.text == "<@U0123> approved\n<#C0123> too"


def test_escape_and_unescape_round_trip() -> None:
    assert bk.escape_mrkdwn("a<&>b") == "a&lt;&amp;&gt;b"
    assert bk.unescape_mrkdwn(bk.escape_mrkdwn("&lt; <x> &")) == "&lt; <x> &"
    assert bk.escape_mrkdwn(None) == ""


def test_huge_brief_splits_into_messages_within_every_limit() -> None:
    messages = Renderer().render_messages("brief", huge_brief())
    assert len(messages) > 1
    for message in messages:
        assert_message_ok(message)


def test_huge_brief_loses_no_text_when_split() -> None:
    renderer = Renderer()
    ctx = huge_brief()
    pieces = []
    for part in bk.parse(renderer.render("brief", ctx)):
        if part.kind in ("header", "button"):
            pieces.append(bk.unescape_mrkdwn(" ".join(part.lines)))
        elif part.kind == "field":
            pieces.append(f"*{bk.escape_mrkdwn(part.attrs['label'])}*{part.text}")
        else:
            pieces.append(part.text)
    messages = renderer.render_messages("brief", ctx)
    sent = bk.blocks_text(b for m in messages for b in m["blocks"])
    assert words(sent) == words("".join(pieces))
    assert words(bk.escape_mrkdwn(ctx["segment"]["rationale"])) in words(sent)
    assert "200.Point199:" in words(sent)


def test_split_messages_keeps_block_order_and_content() -> None:
    blocks = Renderer().render_blocks("brief", huge_brief())
    messages = bk.split_messages(blocks, text="fallback")
    joined = [b for m in messages for b in m["blocks"]]
    assert words(bk.blocks_text(joined)) == words(bk.blocks_text(blocks))
    assert [b["type"] for b in joined if b["type"] != "divider"] == [
        b["type"] for b in blocks if b["type"] != "divider"
    ]


def test_ten_thousand_char_paragraph_is_hard_split_at_spaces() -> None:
    text = " ".join(["lorem"] * 2000)
    messages = bk.split_messages([{"type": "section", "text": bk._mrkdwn(text)}], text="t")
    sections = [b["text"]["text"] for m in messages for b in m["blocks"]]
    assert len(sections) >= 4
    assert all(len(s) <= 3000 and set(s.split()) == {"lorem"} for s in sections)
    assert words("".join(sections)) == words(text)


def test_long_header_becomes_several_headers() -> None:
    title = " ".join(["Segment"] * 60)
    messages = bk.split_messages([{"type": "header", "text": bk._plain(title)}], text="")
    headers = [b["text"]["text"] for b in messages[0]["blocks"]]
    assert len(headers) == 4 and all(len(h) <= 150 for h in headers)
    assert " ".join(headers) == title


def test_many_fields_make_sections_of_ten() -> None:
    fields = [bk._mrkdwn(f"*f{i}*\nvalue") for i in range(23)]
    (message,) = bk.split_messages([{"type": "section", "fields": fields}], text="t")
    assert [len(b["fields"]) for b in message["blocks"]] == [10, 10, 3]


def test_more_than_fifty_blocks_spill_into_a_second_message() -> None:
    blocks = [{"type": "section", "text": bk._mrkdwn(f"line {i}")} for i in range(120)]
    messages = bk.split_messages(blocks, text="Catalog")
    assert [len(m["blocks"]) for m in messages] == [50, 50, 20]
    assert [m["text"] for m in messages] == [
        "Catalog",
        "Catalog (continued, 2/3)",
        "Catalog (continued, 3/3)",
    ]


def test_header_moves_with_the_section_it_introduces() -> None:
    blocks = [{"type": "section", "text": bk._mrkdwn("x" * 2900)} for _ in range(3)]
    blocks.append({"type": "header", "text": bk._plain("Next part")})
    blocks.append({"type": "section", "text": bk._mrkdwn("y" * 2900)})
    first, second = bk.split_messages(blocks, text="t")
    assert first["blocks"][-1]["type"] == "section"
    assert second["blocks"][0]["text"]["text"] == "Next part"


def test_fallback_is_derived_and_bounded() -> None:
    blocks = [{"type": "section", "text": bk._mrkdwn("first line\nsecond")}]
    assert bk.split_messages(blocks, text="")[0]["text"] == "first line"
    (long,) = bk.split_messages(blocks, text="word " * 1000)
    assert len(long["text"]) <= 3000 and long["text"].endswith("…")
    assert bk.split_messages([], text="") == [{"text": "segops", "blocks": []}]


def test_split_never_cuts_a_link() -> None:
    text = ("a" * 2990) + "&amp;<@U0123ABCD>" + ("b" * 100)
    first, second = bk.split_text(text, 3000)
    assert first == "a" * 2990 + "&amp;"
    assert second.startswith("<@U0123ABCD>")


def test_split_never_cuts_an_entity() -> None:
    first, second = bk.split_text("a" * 2997 + "&amp;" + "b" * 10, 3000)
    assert (first, second) == ("a" * 2997, "&amp;" + "b" * 10)


def test_malformed_directive_is_an_error() -> None:
    with pytest.raises(bk.MarkupError, match="malformed directive"):
        bk.parse('<field label={"x"}>1')


def test_split_code_block_is_closed_and_reopened() -> None:
    text = "```\n" + "\n".join(f"line {i}" for i in range(600)) + "\n```"
    pieces = bk.split_text(text, 3000)
    assert len(pieces) > 1
    assert all(p.startswith("```") and p.endswith("```") for p in pieces)
    assert all(len(p) <= 3000 for p in pieces)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab &<>\n;@|x"), max_size=400),
    st.integers(min_value=12, max_value=120),
)
def test_split_text_keeps_every_character_within_the_limit(text: str, limit: int) -> None:
    pieces = bk.split_text(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert words("".join(pieces)) == words(text)


def test_button_values_survive_json_quoting() -> None:
    value = 'seg|"quoted" > & <x>'
    (part,) = bk.parse(f"<button action=a value={json.dumps(value)}>Go")
    assert part.attrs["value"] == value
