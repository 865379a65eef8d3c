"""Error texts: use cases name people as ``@U123``; the Slack transport mentions them."""

from __future__ import annotations

from bot.listeners.messages import problem
from commands.errors import NotAuthorised, person
from segments.errors import SegopsError


def test_the_people_an_error_names_become_mentions() -> None:
    error = NotAuthorised(
        f"only the owner {person('U111')} or approvers {person('U222')} can decide",
        users=["U111", "U222"],
    )
    assert str(error) == "only the owner @U111 or approvers @U222 can decide"
    assert problem(error) == (
        ":no_entry: Not authorised: only the owner <@U111> or approvers <@U222> can decide"
    )


def test_only_the_ids_the_error_lists_are_mentioned_and_whole_ids_only() -> None:
    error = NotAuthorised("ask @U111, not @U1112 or @channel", users=["U111"])
    assert problem(error) == ":no_entry: Not authorised: ask <@U111>, not @U1112 or @channel"


def test_text_typed_by_users_cannot_open_a_mention_or_a_link() -> None:
    error = SegopsError("unknown segment '<!channel> <https://x|y>'")
    assert problem(error) == ":warning: unknown segment '&lt;!channel&gt; &lt;https://x|y&gt;'"
    hostile = NotAuthorised("only @<!here> may", users=["<!here>"])
    assert "<!here>" not in problem(hostile)


def test_the_dead_letter_dm_escapes_a_channel_given_by_name() -> None:
    from bot.delivery.errors import fallback_text

    by_id = fallback_text(kind="drift_alert", channel="C111", text="Drift", reason="not_in_channel")
    assert by_id.startswith("I could not post a drift_alert message to <#C111>: not_in_channel.")
    hostile = fallback_text(
        kind="drift_alert", channel="#growth <!channel>", text="Drift", reason="channel_not_found"
    )
    assert "<!channel>" not in hostile and "#growth &lt;!channel&gt;" in hostile
