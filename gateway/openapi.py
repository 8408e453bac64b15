"""The OpenAPI 3.1 document, built from the router itself.

Every handler is declared with :func:`api`: its summary (the docstring's first line), who may
call it, its request body struct, its query parameters and answers. Handlers read their body
with :func:`read_body`, which decodes with the *declared* struct, and the document's request
schemas come from the same structs through ``msgspec.json.schema_components``, so what is
documented is what is validated.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec
from aiohttp import web

from gateway import bodies

F = TypeVar("F", bound=Callable[..., Any])
ATTR: Final = "__openapi__"
PARAM: Final = re.compile(r"\{([^}/:]+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Query:
    """A query parameter of an operation."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True, kw_only=True)
class Doc:
    """What :func:`api` records about a handler."""

    tag: str
    roles: tuple[str, ...] = ()
    body: type[bodies.Body] | None = None
    query: tuple[Query, ...] = ()
    ok: int = 200
    answers: dict[int, str] = field(default_factory=dict)
    content: str = "application/json"
    response: Any = None
    """A msgspec type describing the success body (optional)."""


def api(**doc: Any) -> Callable[[F], F]:
    """Declare a handler's contract (see :class:`Doc`)."""
    record = Doc(**doc)

    def mark(handler: F) -> F:
        setattr(handler, ATTR, record)
        return handler

    return mark


def doc_of(handler: Any) -> Doc | None:
    found: Doc | None = getattr(handler, ATTR, None)
    return found


async def read_body(request: web.Request) -> Any:
    """The request body decoded and validated as the handler's declared ``body`` struct."""
    doc = doc_of(request.match_info.handler)
    if doc is None or doc.body is None:
        raise RuntimeError(f"{request.match_info.handler!r} declares no request body")
    return bodies.decode(await request.read(), doc.body)


ERROR_SCHEMA: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
    "additionalProperties": True,
}
STANDARD: Final = {
    400: "Malformed request (not JSON, bad query)",
    401: "Missing, invalid or expired token",
    403: "The token's role may not do this",
    404: "Not found",
    413: "Request body too large",
    422: "Well-formed but invalid input",
    503: "Redis unavailable or overloaded; retry",
}


def document(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document of every route of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    types: list[Any] = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        doc = doc_of(route.handler)
        if doc is None:
            raise RuntimeError(f"route {route.method} {route.resource.canonical} is undocumented")
        path = route.resource.canonical
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, doc, path)
        types += [t for t in (doc.body, doc.response) if t is not None]
    _, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    components["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }


def _ref(kind: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components(
        [kind], ref_template="#/components/schemas/{name}"
    )
    return schema


def _operation(route: web.AbstractRoute, doc: Doc, path: str) -> dict[str, Any]:
    text = inspect.getdoc(route.handler) or ""
    summary, _, description = text.partition("\n\n")
    op: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{path.strip('/').replace('/', '_')}",
        "summary": " ".join(summary.split()),
        "tags": [doc.tag],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in PARAM.findall(path)
        ]
        + [
            {
                "name": q.name,
                "in": "query",
                "required": q.required,
                "description": q.description,
                "schema": q.schema,
            }  # fmt: skip
            for q in doc.query
        ],
    }
    if description:
        op["description"] = " ".join(description.split())
    if doc.roles:
        op["security"] = [{"bearer": []}, {"query": []}]
        op["x-roles"] = list(doc.roles)
    if doc.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(doc.body)}},
        }
    ok: dict[str, Any] = {"description": "Success"}
    schema = _ref(doc.response) if doc.response is not None else {}
    ok["content"] = {doc.content: {"schema": schema}}
    responses: dict[str, Any] = {str(doc.ok): ok}
    codes = set(doc.answers)
    if doc.body is not None:
        codes |= {400, 413, 422}
    if doc.roles:
        codes |= {401, 403}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": doc.answers.get(code) or STANDARD.get(code, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    op["responses"] = responses
    return op
