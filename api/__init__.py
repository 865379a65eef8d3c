"""The membership API: a small authenticated JSON API over WSGI for products and flags.

``GET /api/v1/entities/{entity}/segments``, ``GET /api/v1/segments/{segment}/members/{entity}``
and ``GET /api/v1/segments/{segment}/members`` (paged, ``as_of``), behind bearer tokens
(``segops tokens``), with the OpenAPI document at ``/api/v1/openapi.json``.
``segops serve`` mounts it beside the Slack endpoints; see :mod:`api.app`.
"""

from api.app import API_PREFIX, build_api

__all__ = ["API_PREFIX", "build_api"]
