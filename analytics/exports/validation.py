"""Validation of exports against the official schemas (read from a standards folder at run
time, never copied): CAP 1.2 with ``xmlschema``, EIDO with ``jsonschema`` over the OpenAPI
document and its NIEM components.

``xmlschema``, ``jsonschema`` and ``pyyaml`` are test-extra dependencies, imported on first use.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

CAP_XSD: Final = Path("oasis-cap-1.2") / "CAP-v1.2.xsd"
EIDO_DIR: Final = Path("nena-eido-json") / "Schema"
EIDO_ROOT: Final = "EmergencyIncidentDataObjectType"
_BASE: Final = "https://schemas.invalid/eido/"
"""A made-up base URI: relative references between the YAML files resolve under it."""
_RFC3339: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


class ExportInvalid(ValueError):
    """An export does not validate; the message lists what the schema rejected."""


def validate_cap(document: bytes, standards: Path) -> None:
    """Raise :class:`ExportInvalid` unless ``document`` is valid against CAP-v1.2.xsd."""
    schema = _cap_schema(str(standards))
    errors = [str(e.reason or e) for e in schema.iter_errors(document.decode("utf-8"))]
    if errors:
        raise ExportInvalid("; ".join(errors[:5]))


def validate_eido(document: Any, standards: Path) -> None:
    """Raise :class:`ExportInvalid` unless ``document`` (parsed JSON) is a valid
    ``EmergencyIncidentDataObjectType``."""
    validator = _eido_validator(str(standards))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise ExportInvalid(
            "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in errors[:5]
            )
        )


@cache
def _cap_schema(standards: str) -> Any:
    import xmlschema

    return xmlschema.XMLSchema(str(Path(standards) / CAP_XSD))


@cache
def _eido_validator(standards: str) -> Any:
    import jsonschema
    import yaml
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    folder = Path(standards) / EIDO_DIR

    def load(relative: str) -> Any:
        document = yaml.safe_load((folder / relative).read_text(encoding="utf-8"))
        if relative == "openapi.yaml":
            # Known defect of the published schema: minItems is the string "1,".
            agent = document["components"]["schemas"]["AgentType"]["allOf"][1]
            agent["properties"]["agentRoleRegistryText"]["minItems"] = 1
        return document

    def retrieve(uri: str) -> Resource[Any]:
        relative = re.sub(r"/+", "/", uri.removeprefix(_BASE))
        return DRAFT4.create_resource(load(relative))

    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    root = {"$ref": f"{_BASE}openapi.yaml#/components/schemas/{EIDO_ROOT}"}
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_is_datetime)
    return jsonschema.Draft4Validator(root, registry=registry, format_checker=checker)


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return not isinstance(value, str)
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


__all__: list[str] = ["ExportInvalid", "validate_cap", "validate_eido"]
