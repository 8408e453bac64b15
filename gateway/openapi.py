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
from gateway.errors import HttpError

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


@dataclass(frozen=True)
class Answer:
    """An answer other than success whose body is not the JSON :data:`ERROR_SCHEMA`."""

    description: str
    content: str


@dataclass(frozen=True, kw_only=True)
class Doc:
    """What :func:`api` records about a handler."""

    tag: str
    roles: tuple[str, ...] = ()
    body: type[bodies.Body] | None = None
    path: dict[str, Any] = field(default_factory=dict)
    """Path parameter -> the msgspec type its value must be (default: any string). The
    handler checks the value with the same type (:func:`path_value`)."""
    query: tuple[Query, ...] = ()
    ok: int = 200
    answers: dict[int, str | Answer] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    """Headers of the success answer: name -> description (always sent)."""
    content: str | tuple[str, ...] = "application/json"
    """The success answer's media type (several when a parameter chooses the format)."""
    store: bool = True
    """Whether the handler needs Redis (or the pole index): then it may answer 503."""
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
    if not JSON_TYPE.match(request.content_type):  # a plain HTML form cannot send JSON
        raise HttpError(415, f"the body must be application/json, not {request.content_type!r}")
    return bodies.decode(await request.read(), doc.body)


def path_value(request: web.Request, name: str, refusal: str | None = None) -> str:
    """Path parameter ``name`` checked against the type the handler declares for it (the
    document's schema of it); 422 (``refusal``, or "malformed <name>") when it does not fit."""
    value = request.match_info[name]
    doc = doc_of(request.match_info.handler)
    kind = doc.path.get(name) if doc is not None else None
    if kind is not None:
        try:
            msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            raise HttpError(422, f"{refusal or 'malformed ' + name}: {exc}") from None
    return value


ERROR_SCHEMA: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "error_key": {"type": "string", "description": "A refusal in one of the dispatcher's "
                      "forms: its message catalogue key (polewatch.details)"},
        "error_args": {"type": "object", "description": "The key's parameters"},
    },
    "additionalProperties": True,
}  # fmt: skip
STANDARD: Final = {
    400: "Malformed request (not JSON, bad query)",
    401: "Missing, invalid or expired token",
    403: "The token's role may not do this, or the request came from another site's page",
    404: "Not found",
    413: "Request body too large",
    415: "The body is not application/json",
    422: "Well-formed but invalid input",
    429: "Too many requests (Retry-After says when)",
    503: "Redis unavailable or overloaded; retry (after Retry-After seconds)",
}
RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
"""Every 429 and 503 carries it (:func:`gateway.errors.error_middleware` sees to the 503s)."""
NOT_ROUTED: Final = "Not found (also: a path value this route cannot carry, such as '..')"


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
            {"name": name, "in": "path", "required": True, "schema": _path_schema(route, doc, name)}
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
    media = (doc.content,) if isinstance(doc.content, str) else doc.content
    ok["content"] = {kind: {"schema": schema} for kind in media}
    if doc.headers:
        ok["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in doc.headers.items()
        }
    responses: dict[str, Any] = {str(doc.ok): ok}
    codes = set(doc.answers)
    if doc.body is not None:
        codes |= {400, 413, 415, 422}
    if doc.roles:
        codes |= {401, 403}
    if route.method not in ("GET", "HEAD", "OPTIONS"):
        codes |= {403}  # another site's page acting through a browser (gateway.origin)
    if PARAM.search(path):
        codes |= {404}  # the router's answer for a value it cannot route (or an unknown one)
    if doc.store:
        codes |= {503}
    for code in sorted(codes):
        answer = doc.answers.get(code)
        if isinstance(answer, Answer):
            text, content = answer.description, {answer.content: {"schema": {"type": "string"}}}
        else:
            text = answer or STANDARD.get(code) or (NOT_ROUTED if code == 404 else "Error")
            content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        responses[str(code)] = {"description": text, "content": content}
        if code in (429, 503):
            responses[str(code)]["headers"] = RETRY_AFTER
    op["responses"] = responses
    return op


JSON_TYPE: Final = re.compile(r"^application/([\w.-]+\+)?json$")
"""Media types :func:`read_body` takes (parameters such as ``charset`` aside)."""
CHOICES: Final = re.compile(r"^\w+(\|\w+)*$")


def _path_schema(route: web.AbstractRoute, doc: Doc, name: str) -> dict[str, Any]:
    """A path parameter's schema: its declared type, or the alternatives of the route's own
    pattern (``{fmt:html|pdf}``), or any string."""
    if name in doc.path:
        return _ref(doc.path[name])
    pattern = route.resource.get_info().get("pattern") if route.resource is not None else None
    if pattern is not None:
        found = re.search(r"\(\?P<" + re.escape(name) + r">([^)]*)\)", pattern.pattern)
        if found and CHOICES.match(found.group(1)):
            return {"type": "string", "enum": found.group(1).split("|")}
    return {"type": "string"}
