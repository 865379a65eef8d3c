"""Answering the person who queued a job (:mod:`commands.queue`) once the worker is done.

The answer goes to the command's ``response_url`` as an ephemeral message while Slack
still accepts it (30 minutes, checked with a margin); when there is none, it has
expired or Slack refuses it, the answer is queued as a DM in the outbox, which the
delivery loop posts with its retries. A finished preview also updates the proposal's
message in place, so it shows the impact.

Each job is answered once: the answer is taken with a conditional update
(``queue.take_reply``) before anything is sent.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient
from sqlalchemy import Engine

from bot.listeners.messages import refresh_proposal_message
from briefs.blocks import escape_mrkdwn as esc
from briefs.render import render_reply
from commands import queue
from commands.policy import visible_size
from commands.settings import Settings

logger = logging.getLogger(__name__)


def reply_text(job: queue.JobView, settings: Settings) -> str:
    """What the person is told about their finished job."""
    if job.kind == "refresh":
        what = f"of `{esc(job.args['only'])}`" if job.args.get("only") else "of every segment"
        if job.status != "done":
            return f":warning: The refresh {what} failed: {esc(job.error or 'unknown error')}"
        floor = settings.privacy_floor
        ctx = {
            "as_of": job.result.get("as_of"),
            "segments": [
                {**s, "size": visible_size(s.get("size"), floor)}
                for s in job.result.get("segments", [])
            ],
            "privacy_floor": floor,
        }
        return render_reply("segment-refresh", ctx, templates_dir=settings.templates_dir)
    number = job.args.get("proposal_id")
    if job.status != "done":
        return (
            f":warning: The impact of proposal #{number} was not measured: "
            f"{esc(job.error or 'unknown error')}"
        )
    impact = job.result.get("impact") or {}
    if "size_now" not in impact:
        return f":warning: Proposal #{number}: {esc(impact.get('note') or 'impact not measured')}"
    where = f" in <#{job.channel}>" if job.channel else ""
    return f":bar_chart: The impact of proposal #{number} is measured; its message{where} shows it."


def answer(engine: Engine, settings: Settings, client: WebClient | None, job_id: int) -> str | None:
    """Answer finished job ``job_id`` unless someone did; how (``response_url``, ``dm``)."""
    job = queue.take_reply(engine, job_id)
    if job is None:
        return None
    if job.kind == "preview" and job.status == "done" and client is not None:
        try:
            refresh_proposal_message(client, engine, settings, int(job.args["proposal_id"]))
        except SlackApiError as error:
            logger.warning(
                "proposal_update_failed job=%s error=%s", job.id, error.response.get("error")
            )
    text = reply_text(job, settings)
    if job.response_url_fresh():
        try:
            sent = WebhookClient(job.response_url, timeout=10).send(
                text=text, response_type="ephemeral", replace_original=False
            )
            if sent.status_code == 200:
                return "response_url"
            logger.info("response_url_refused job=%s status=%s", job.id, sent.status_code)
        except OSError as error:
            logger.info("response_url_failed job=%s error=%s", job.id, error)
    return "dm" if queue.reply_by_dm(engine, job, text) else None


def answer_finished(engine: Engine, settings: Settings, client: WebClient | None) -> int:
    """Answer every finished, unanswered job; how many were answered."""
    answered = 0
    for job_id in queue.unreplied(engine):
        if answer(engine, settings, client, job_id) is not None:
            answered += 1
    return answered
