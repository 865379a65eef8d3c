"""Templates, the loader chain, escaping and the buttons each kind offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from briefs import render as r
from briefs.render import KINDS, PERSONA_KINDS, BriefError, Renderer
from tests.briefs import samples
from tests.briefs.limits import assert_block_ok


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def actions(blocks: list[dict]) -> list[dict]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def all_text(blocks: list[dict]) -> str:
    from briefs.blocks import blocks_text

    return blocks_text(blocks)


# A reminder leads with how long the proposal has waited, above the proposal's header.
LEADS_WITH_A_SECTION = {"proposal-reminder": "Waiting for a decision for 3 days"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_text_from_a_realistic_context(renderer: Renderer, kind: str) -> None:
    text = renderer.render_text(kind, samples.all_kinds()[kind])
    assert text.startswith("⏰" if kind in LEADS_WITH_A_SECTION else "*")
    assert "None" not in text


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_valid_blocks(renderer: Renderer, kind: str) -> None:
    blocks = renderer.render_blocks(kind, samples.all_kinds()[kind])
    if kind in LEADS_WITH_A_SECTION:
        assert LEADS_WITH_A_SECTION[kind] in blocks[0]["text"]["text"]
        assert blocks[1]["type"] == "header"
    else:
        assert blocks[0]["type"] == "header"
    for block in blocks:
        assert_block_ok(block)


def test_persona_is_an_alias_of_brief(renderer: Renderer) -> None:
    ctx = samples.persona()
    assert renderer.render_text("persona", ctx) == renderer.render_text("brief", ctx)


def test_unknown_kind_is_a_user_error(renderer: Renderer) -> None:
    with pytest.raises(BriefError, match="unknown brief kind 'breif'"):
        renderer.render_text("breif", samples.persona())


def test_user_folder_overrides_one_template_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "brief.j2").write_text(
        "<header>Custom {{ segment.title|mrkdwn }}\n<section>v{{ version }} only\n"
    )
    renderer = Renderer(tmp_path)
    assert renderer.render_text("brief", samples.persona()) == "*Custom Power users*\n\nv3 only"
    assert "talking points" in renderer.render_text("talking-points", samples.persona())


def test_override_can_import_the_builtin_macros(tmp_path: Path) -> None:
    (tmp_path / "brief.j2").write_text(
        '{% import "builtin/_macros.j2" as m %}\n<section>{{ m.cite(version, as_of) }}\n'
    )
    text = Renderer(tmp_path).render_text("brief", samples.persona())
    assert text == "Definition v3 · data as of 2026-08-31"


def test_missing_template_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(BriefError, match="does not exist"):
        Renderer(tmp_path / "nope")


def test_missing_context_key_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "catalog.j2").write_text("<header>Catalog\n<section>{{ nothing_here }}\n")
    with pytest.raises(BriefError, match=r"catalog\.j2 line 2: 'nothing_here' is undefined"):
        Renderer(tmp_path).render_text("catalog", samples.catalog())


def test_syntax_error_in_an_override_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "catalog.j2").write_text("{% if %}\n")
    with pytest.raises(BriefError, match=r"catalog\.j2 line 1"):
        Renderer(tmp_path).render_text("catalog", samples.catalog())


def test_button_without_action_is_a_template_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.j2").write_text("<button value=1>Go\n")
    with pytest.raises(BriefError, match="needs action"):
        Renderer(tmp_path).render_blocks("catalog", samples.catalog())


def test_brief_cites_definition_version_and_refresh_date(renderer: Renderer) -> None:
    ctx = samples.persona()
    assert "Definition v3 · data as of 2026-08-31" in renderer.render_text("brief", ctx)
    contexts = [b for b in renderer.render_blocks("brief", ctx) if b["type"] == "context"]
    assert "Definition v3 · data as of 2026-08-31" in contexts[0]["elements"][0]["text"]


@pytest.mark.parametrize("kind", PERSONA_KINDS)
def test_persona_kinds_cite_the_version(renderer: Renderer, kind: str) -> None:
    ctx = samples.persona(version=7, as_of="2026-09-30")
    assert "Definition v7 · data as of 2026-09-30" in renderer.render_text(kind, ctx)


def test_brief_before_the_first_refresh_says_so(renderer: Renderer) -> None:
    text = renderer.render_text("brief", samples.persona(as_of=None, stats=None))
    assert "Definition v3 · not refreshed yet" in text
    assert "No refresh yet" in text


@pytest.mark.parametrize("kind", PERSONA_KINDS)
def test_privacy_floor_hides_every_live_number(renderer: Renderer, kind: str) -> None:
    stats = samples.persona()["stats"] | {"size": None, "hidden": True, "privacy_floor": 25}
    text = renderer.render_text(kind, samples.persona(stats=stats))
    for number in ("12,340", "11,846", "4.2%", "14.62", "1,830", "▁"):
        assert number not in text
    if kind != "discovery":
        assert "Fewer than 25 members" in text


def test_user_text_is_escaped_for_mrkdwn(renderer: Renderer) -> None:
    ctx = samples.persona()
    ctx["segment"]["title"] = "R&D <!channel>"
    ctx["segment"]["persona"]["summary"] = "Ask <@U999> about <https://evil.example|prices>"
    text = renderer.render_text("brief", ctx)
    assert "R&amp;D &lt;!channel&gt;" in text
    assert "&lt;@U999&gt;" in text and "&lt;https://evil.example|prices&gt;" in text
    assert "<!channel>" not in text and "<@U999>" not in text


def test_header_plain_text_shows_the_characters_themselves(renderer: Renderer) -> None:
    ctx = samples.persona()
    ctx["segment"]["title"] = "R&D <team>"
    header = renderer.render_blocks("brief", ctx)[0]
    assert header["text"] == {
        "type": "plain_text",
        "text": "R&D <team> · persona brief",
        "emoji": True,
    }


def test_user_text_cannot_open_a_markup_directive(renderer: Renderer) -> None:
    ctx = samples.persona()
    ctx["segment"]["persona"]["summary"] = "hi\n<button action=proposal_approve value=1>Go"
    blocks = renderer.render_blocks("brief", {**ctx, "share": False})
    assert actions(blocks) == []
    assert "&lt;button action=proposal_approve value=1&gt;Go" in all_text(blocks)


def test_plain_text_decodes_links_and_entities_for_a_terminal(renderer: Renderer) -> None:
    ctx = samples.persona()
    ctx["segment"]["title"] = "R&D"
    text = renderer.render_text("brief", ctx, plain=True)
    assert "R&D · persona brief" in text
    assert "owner @U0123ABCD" in text
    assert "&amp;" not in text and "<@" not in text


@pytest.mark.parametrize("kind", PERSONA_KINDS)
def test_persona_kinds_offer_post_to_channel(renderer: Renderer, kind: str) -> None:
    (button,) = actions(renderer.render_blocks(kind, samples.persona()))
    assert button["action_id"] == "persona_share"
    assert button["value"] == f"power-users|{kind}"
    assert actions(renderer.render_blocks(kind, samples.persona(share=False))) == []


def test_pending_proposal_has_approve_and_reject(renderer: Renderer) -> None:
    approve, reject = actions(renderer.render_blocks("proposal", samples.proposal()))
    assert (approve["action_id"], approve["value"], approve["style"]) == (
        "proposal_approve",
        "17",
        "primary",
    )
    assert (reject["action_id"], reject["value"], reject["style"]) == (
        "proposal_reject",
        "17",
        "danger",
    )


def test_approved_proposal_says_who_and_when_without_buttons(renderer: Renderer) -> None:
    blocks = renderer.render_blocks("proposal", samples.proposal("approved"))
    assert [b for b in blocks if b["type"] == "actions"] == []
    assert "Approved by <@U0123ABCD> at 2026-09-01 14:03 UTC" in all_text(blocks)


@pytest.mark.parametrize(("status", "words"), [("rejected", "Rejected by"), ("stale", "Stale")])
def test_closed_proposals_have_no_buttons(renderer: Renderer, status: str, words: str) -> None:
    blocks = renderer.render_blocks("proposal", samples.proposal(status))
    assert [b for b in blocks if b["type"] == "actions"] == []
    assert words in all_text(blocks)


def test_drift_alert_offers_one_set_of_buttons_for_the_whole_alert(renderer: Renderer) -> None:
    buttons = actions(renderer.render_blocks("drift-alert", samples.drift_alert()))
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("alert_ack", "41"),
        ("alert_propose", "41"),
        ("alert_mute", "41"),
    ]
    assert [b["text"]["text"] for b in buttons] == [
        "Acknowledge",
        "Open proposal",
        "Mute for 7 days",
    ]


def test_drift_alert_buttons_name_the_first_alert_still_open(renderer: Renderer) -> None:
    ctx = samples.drift_alert()
    ctx["alerts"][0].update(status="acknowledged", acknowledged_by="U0123ABCD")
    buttons = actions(renderer.render_blocks("drift-alert", ctx))
    assert {b["value"] for b in buttons} == {"42"}


def test_acknowledged_drift_alert_has_no_buttons(renderer: Renderer) -> None:
    ctx = samples.drift_alert()
    for alert in ctx["alerts"]:
        alert.update(status="acknowledged", acknowledged_by="U0123ABCD")
    blocks = renderer.render_blocks("drift-alert", ctx)
    assert actions(blocks) == []
    assert "Acknowledged by <@U0123ABCD>" in all_text(blocks)


def test_blocked_refresh_summary_says_nothing_was_published(renderer: Renderer) -> None:
    ctx = samples.refresh_summary(
        status="blocked", quality={"verdict": "blocked", "failures": ["crm is 5 days old"]}
    )
    text = renderer.render_text("refresh-summary", ctx)
    assert "Not published" in text and "crm is 5 days old" in text


def test_refresh_group_lists_every_segment(renderer: Renderer) -> None:
    text = renderer.render_text("refresh-group", samples.refresh_group())
    assert (
        "*Power users* `power-users` · 11,846 → 12,340 members, up 4.2 % · +702 joined · 208 left"
        in text
    )
    assert "*At-risk accounts*" in text and "Not published: crm is 5 days old" in text


def test_catalog_says_hidden_and_never_refreshed_apart(renderer: Renderer) -> None:
    text = renderer.render_text("catalog", samples.catalog())
    assert "`vip-pilot` · v1 · size hidden" in text
    assert "`new-signups` · v1 · not refreshed yet" in text


def test_render_messages_packs_blocks_with_a_fallback(renderer: Renderer) -> None:
    (message,) = renderer.render_messages("brief", samples.persona())
    assert message["text"] == "Power users · persona brief"
    assert message["blocks"][0]["type"] == "header"


def test_module_level_functions_share_a_renderer() -> None:
    ctx = samples.catalog()
    assert r.render_text("catalog", ctx) == Renderer().render_text("catalog", ctx)
    assert r.render_blocks("catalog", ctx) == Renderer().render_blocks("catalog", ctx)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12340, "12,340"), (14.625, "14.62"), (1830.5, "1,830"), (-3, "−3"), (None, "—")],
)
def test_num_filter(value: object, expected: str) -> None:
    assert r.f_num(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(4.2, "+4.2%"), (-3.75, "−3.8%"), (0.01, "±0.0%"), (None, "—")]
)
def test_pct_filter(value: float | None, expected: str) -> None:
    assert r.f_pct(value) == expected


def test_spark_filter_scales_between_min_and_max() -> None:
    assert r.f_spark([["d1", 1], ["d2", 5], ["d3", 9]]) == "▁▅█"
    assert r.f_spark([]) == "—"


def test_when_filter_formats_utc() -> None:
    assert r.f_when("2026-09-01T16:03:00+02:00") == "2026-09-01 14:03 UTC"
    assert r.f_when("2026-09-01") == "2026-09-01"


def test_user_and_link_filters_only_link_safe_values() -> None:
    assert r.f_user("U0123ABCD") == "<@U0123ABCD>"
    assert r.f_user("<!here>") == "&lt;!here&gt;"
    assert r.f_link("https://x.example/a", "view") == "<https://x.example/a|view>"
    assert r.f_link("https://x.example/a|b>", "view") == ""


def test_override_importing_a_missing_template_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.j2").write_text('{% import "nope.j2" as m %}\n')
    with pytest.raises(BriefError, match="cannot find template 'nope.j2'"):
        Renderer(tmp_path).render_text("catalog", samples.catalog())


def test_malformed_directive_in_an_override_names_the_template(tmp_path: Path) -> None:
    (tmp_path / "catalog.j2").write_text('<field label="open>1\n')
    with pytest.raises(BriefError, match=r"catalog\.j2: malformed directive"):
        Renderer(tmp_path).render_text("catalog", samples.catalog())


# --- /segment replies and brief kinds --------------------------------------------------


def segment_show(**overrides: object) -> dict:
    definition = {
        "name": "trial",
        "title": "Trial & co",
        "tier": "tactical",
        "owner": "U111",
        "approvers": ["U222", "U333"],
        "channel": "C111",
        "rule": "plan = 'trial'",
    }
    stats = {"size": 12345, "as_of": "2026-09-01", "joined": 10, "left": 2, "change_pct": 1.25}
    ctx = {
        "name": "trial",
        "status": "active",
        "version": 3,
        "cadence": "daily",
        "definition": definition,
        "criteria": "plan is trial",
        "stats": stats,
        "hidden": False,
        "privacy_floor": 10,
    }
    return ctx | overrides


def test_segment_show_reply_is_plain_mrkdwn_lines(renderer: Renderer) -> None:
    assert renderer.render_reply("segment-show", segment_show()) == "\n".join(
        [
            "*Trial &amp; co* `trial` · tactical · v3 · active",
            "Owner <@U111> · approvers <@U222>, <@U333> · channel C111 · cadence daily",
            "*Rule* `plan = 'trial'`",
            "*In words* plan is trial",
            "*Size* 12,345 (+1.2%) as of 2026-09-01 · +10 joined, -2 left",
        ]
    )


def test_segment_show_reply_hides_a_size_under_the_floor(renderer: Renderer) -> None:
    text = renderer.render_reply("segment-show", segment_show(hidden=True))
    assert text.endswith("*Size* fewer than 10 members as of 2026-09-01")
    assert "12,345" not in text


def test_segment_history_and_drift_replies(renderer: Renderer) -> None:
    version = {
        "version": 2,
        "change_kind": "edit",
        "created_at": "2026-09-01T10:00:00",
        "author": "U111",
        "approver": "U222",
        "reason": "why",
        "rule": "x = 1",
    }
    history = renderer.render_reply(
        "segment-history", {"name": "trial", "versions": [version] * 3, "limit": 2}
    )
    assert history.splitlines() == [
        "*History of* `trial`",
        "• v2 edit on 2026-09-01 by <@U111>, approved by <@U222>: why",
        "    `x = 1`",
        "• v2 edit on 2026-09-01 by <@U111>, approved by <@U222>: why",
        "    `x = 1`",
        "_…and 1 older versions (`segops history`)._",
    ]
    alert = {"as_of": None, "severity": "warning", "kind": "size", "message": "m", "status": "open"}
    drift = renderer.render_reply(
        "segment-drift",
        {
            "name": "trial",
            "points": [["d1", 1234], ["d2", None]],
            "alerts": [alert],
            "privacy_floor": 10,
        },
    )
    assert drift == "\n".join(
        [
            "*Drift of* `trial`",
            "• d1: 1,234",
            "• d2: fewer than 10",
            "*Recent alerts*",
            "• — warning size: m (open)",
        ]
    )


def test_a_reply_template_can_be_overridden(tmp_path: Path) -> None:
    (tmp_path / "segment-show.j2").write_text("{{ name|mrkdwn }} v{{ version }}\n")
    assert Renderer(tmp_path).render_reply("segment-show", segment_show()) == "trial v3"


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("", "brief"),
        (None, "brief"),
        ("persona", "brief"),
        ("Talking_Points", "talking-points"),
        ("DISCOVERY", "discovery"),
    ],
)
def test_brief_kind_parses_what_users_type(typed: str | None, kind: str) -> None:
    assert r.brief_kind(typed) == kind


def test_brief_kind_refuses_an_unknown_kind() -> None:
    with pytest.raises(BriefError, match="unknown brief kind 'catalog'"):
        r.brief_kind("catalog")


def test_the_refresh_reply_hides_sizes_under_the_floor(renderer: Renderer) -> None:
    ctx = {
        "as_of": "2026-06-30",
        "segments": [
            {"segment": "trial", "status": "published", "size": None},
            {"segment": "power_<users>", "status": "blocked", "size": 12_345},
        ],
        "privacy_floor": 10,
    }
    assert renderer.render_reply("segment-refresh", ctx).splitlines() == [
        "*Refreshed* 2 segment(s) as of 2026-06-30",
        "• `trial` published: fewer than 10 members",
        "• `power_&lt;users&gt;` blocked: 12,345 members",
    ]
