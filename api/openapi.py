"""The membership API's OpenAPI 3.0 document (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
KEY = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\x00-\\x1f\\x7f/]+$"}
SEGMENT = {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "Bad parameters",
        401: "Missing or unknown bearer token",
        403: "The token may not read this segment",
        404: "No such segment",
    }
    return {
        str(c): {"description": words[c], "content": {"application/json": {"schema": ERROR}}}
        for c in codes
    }


def document(server_url: str = "/") -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "segops membership API",
            "version": "1",
            "description": "Which segments an entity is in, and who is in a segment.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/entities/{entity}/segments": {
                "get": {
                    "operationId": "segmentsOfEntity",
                    "summary": "The segments (among the token's) the entity is in now",
                    "parameters": [
                        {"name": "entity", "in": "path", "required": True, "schema": KEY}
                    ],
                    "responses": {
                        "200": {
                            "description": "Segments, by name",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/EntitySegments"}
                                }
                            },
                        },
                        **_errors(400, 401, 404),
                    },
                }
            },
            "/api/v1/segments/{segment}/members/{entity}": {
                "get": {
                    "operationId": "isMember",
                    "summary": "Whether the entity is a member (now, or as of a date)",
                    "parameters": [
                        {"name": "segment", "in": "path", "required": True, "schema": SEGMENT},
                        {"name": "entity", "in": "path", "required": True, "schema": KEY},
                        {
                            "name": "as_of",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "format": "date"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Membership",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Membership"}
                                }
                            },
                        },
                        **_errors(400, 401, 403, 404),
                    },
                }
            },
            "/api/v1/segments/{segment}/members": {
                "get": {
                    "operationId": "listMembers",
                    "summary": "A page of the segment's members (now, or as of a date)",
                    "parameters": [
                        {"name": "segment", "in": "path", "required": True, "schema": SEGMENT},
                        {
                            "name": "as_of",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "format": "date"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 10000,
                                "default": 1000,
                            },
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "One page",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/MembersPage"}
                                }
                            },
                        },
                        **_errors(400, 401, 403, 404),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "EntitySegments": {
                    "type": "object",
                    "required": ["entity", "segments"],
                    "properties": {
                        "entity": {"type": "string"},
                        "segments": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
                "Membership": {
                    "type": "object",
                    "required": ["segment", "entity", "member", "as_of"],
                    "properties": {
                        "segment": {"type": "string"},
                        "entity": {"type": "string"},
                        "member": {"type": "boolean"},
                        "as_of": {"type": "string", "format": "date", "nullable": True},
                    },
                    "additionalProperties": False,
                },
                "MembersPage": {
                    "type": "object",
                    "required": ["segment", "as_of", "total", "members", "next_cursor"],
                    "properties": {
                        "segment": {"type": "string"},
                        "as_of": {"type": "string", "format": "date", "nullable": True},
                        "total": {"type": "integer", "minimum": 0},
                        "members": {"type": "array", "items": {"type": "string"}},
                        "next_cursor": {"type": "string", "nullable": True},
                    },
                    "additionalProperties": False,
                },
            },
        },
    }
