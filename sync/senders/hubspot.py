"""HubSpot destinations: a static (MANUAL or SNAPSHOT) list kept in step.

Each batch is one ``PUT /crm/v3/lists/{listId}/memberships/add-and-remove`` through
``hubspot-api-client`` with ``recordIdsToAdd`` / ``recordIdsToRemove`` (entity keys are
HubSpot record ids). Ids HubSpot does not know come back in ``recordIdsMissing``: they
are reported ("2 ids not found"), not counted as acknowledged, and sent again after a
wait (15 minutes, doubling up to a day) or at the segment's next refresh. A rebuild
first pages through ``GET /crm/v3/lists/{listId}/memberships`` and removes every member
(see below for lists shared by segments).

Answers: 429 later (``Retry-After``, else 10 s); 5xx, timeouts and connection errors later
with backoff; 401/403 (the token) and 404 (the list) disable the destination and tell
the owner; other 4xx are final for the batch. The client's own retries are off: the
sync loop owns retrying.

One list may receive several segments (a destination with several ``segments``, or
destinations with the same ``list_id``): the list holds their union. A rebuild then
removes only the members no other segment holds, and a removal of an id another segment
still holds is not sent (:attr:`commands.syncs.Work.keep`).
"""

from __future__ import annotations

from typing import Any

import urllib3
from hubspot import HubSpot
from hubspot.crm.lists import MembershipChangeRequest
from hubspot.crm.lists.exceptions import ApiException

from commands.syncs import Work
from segments.destinations import DestinationConfig
from sync.errors import Dead, Gone, Retry, retry_after

PAGE = 250


class HubSpotSender:
    def __init__(self, name: str, config: DestinationConfig, token: str) -> None:
        self.name, self.config = name, config
        self.what = f"HubSpot list '{config.list_id}'"
        client = HubSpot(
            access_token=token,
            host=config.api_url.rstrip("/"),
            retry=urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0),
        )
        self.api = client.crm.lists.memberships_api

    def send(self, work: Work) -> list[str]:
        remove = [key for key in work.remove if key not in work.keep]
        if not work.add and not remove:
            return []  # every removal is still a member for another segment on the list
        request = MembershipChangeRequest(
            record_ids_to_add=list(work.add), record_ids_to_remove=remove
        )
        answer = self._call(self.api.add_and_remove, self.config.list_id, request)
        return list(answer.record_ids_missing or [])

    def reset(self, work: Work) -> None:
        keep = work.keep
        members: list[str] = []
        after = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE}
            if after:
                kwargs["after"] = after
            page = self._call(self.api.get_page, self.config.list_id, **kwargs)
            members += [str(r.record_id) for r in page.results or [] if r.record_id not in keep]
            after = page.paging.next.after if page.paging and page.paging.next else None
            if not after:
                break
        for i in range(0, len(members), self.config.size):
            request = MembershipChangeRequest(
                record_ids_to_add=[], record_ids_to_remove=members[i : i + self.config.size]
            )
            self._call(self.api.add_and_remove, self.config.list_id, request)

    def close(self) -> None:
        self.api.api_client.close()

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=self.config.timeout, **kwargs)
        except ApiException as error:
            status = int(error.status or 0)
            headers = {k.lower(): v for k, v in (error.headers or {}).items()}
            if status == 429:
                raise Retry(
                    f"{self.what}: rate limited (429)",
                    retry_after=retry_after(headers.get("retry-after")),
                ) from None
            if status in (401, 403):
                raise Gone(f"{self.what}: HubSpot refused the access token ({status})") from None
            if status == 404:
                raise Gone(f"{self.what}: HubSpot has no such list (404)") from None
            if status >= 500 or status in (0, 408):
                raise Retry(f"{self.what}: HubSpot answered {status or 'nothing'}") from None
            raise Dead(f"{self.what}: HubSpot answered {status}") from None
        except urllib3.exceptions.HTTPError as error:
            raise Retry(f"{self.what}: HubSpot unreachable ({type(error).__name__})") from None
