"""The machine-written details of incident events, read back as catalogue keys.

The dispatcher's Function writes English text into an event's ``detail`` (``straight-line 850
m: no road graph``), a withdrawn unit's ``reason`` (``closed by op1``) and its rejections
(``unit P-7 is not free and on duty``). The stored text stays as it is (the archive, exports and
analytics read it); readers that show it to a person ask :func:`parse` for the catalogue key
and parameters of its form and show ``detail.<form>`` in the reader's language instead. Text
typed by a person (an operator's note, a patrol's resolution) matches no form, or belongs to an
event whose detail the Function never writes (:data:`MACHINE_EVENTS`), and is shown as typed.

Each form below is the Function's template with ``{name:kind}`` where it inserts a value
(``tests/test_details.py`` reads the templates out of ``dispatcher/lua`` and fails when one has
no form here). Parameters: ``id`` an incident, unit, alarm or login (:data:`polewatch.wire.Ident`
characters), ``num`` a number (``*_m`` metres and ``*_s`` seconds, which pages format),
``state`` an incident state, ``why`` a nested reason (its own key, or ``{"text": ...}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

Arg = str | int | float | dict[str, Any]


class Parsed(NamedTuple):
    """A recognised detail: its catalogue key and parameters."""

    key: str
    args: dict[str, Arg]

    def view(self) -> dict[str, Any]:
        """``{"key": ..., "args": ...}``, the shape of a nested reason."""
        return {"key": self.key, "args": self.args}


_KINDS: Final = {
    "id": r"[A-Za-z0-9_.:@#/-]+",
    "word": r"\S+",
    "num": r"-?[0-9]+(?:\.[0-9]+)?",
    "state": r"[a-z_]+",
    "why": r".+",
}
_SLOT: Final = re.compile(r"\{([a-z_]+):([a-z]+)\}")

WHY_FORMS: Final = {
    "detail.why.operator": "named by an operator",
    "detail.why.no_eligible": "no eligible unit on the road shortlist",
    "detail.why.no_shortlist": "no road shortlist for this decision",
    "detail.why.no_graph": "no road graph",
    "detail.why.off_road": "the place is off the road graph",
    "detail.why.unreachable": "no free unit reachable by road",
}
"""Why a dispatch went by straight line (``inc.why`` in units.lua, the reasons of
``dispatcher/drive.py``): the nested ``reason`` of ``detail.straight_line``."""

FORMS: Final = {
    # event details (units.lua, commands.lua, patrol.lua)
    "detail.straight_line": "straight-line {distance_m:num} m: {reason:why}",
    "detail.road_unproven":
        "by road; not proven fastest (the road shortlist ran out of faster free units)",
    "detail.no_free_unit": "no free unit within {radius_m:num} m",
    "detail.merged_into_short": "into {incident:id}",
    "detail.merged_incident": "merged incident {incident:id}",
    "detail.split_out": "alarm split out into {incident:id}",
    "detail.evaluation": "evaluation {evaluation:num}",
    "detail.unresponsive": "{count:num} dispatches in a row not acknowledged",
    "detail.off_duty": "off duty",
    # why a unit was withdrawn (the reason of a cancel on its phone)
    "detail.merged_into": "merged into {incident:id}",
    "detail.closed_by": "closed by {actor:id}",
    "detail.cancelled_by": "cancelled by {actor:id}",
    "detail.reassigned_by": "reassigned by {actor:id}",
    "detail.resolved_by": "resolved by {unit:id}",
    "detail.ack_timeout": "no acknowledgement within {timeout_s:num} s",
    "detail.out_of_rotation": "{count:num} dispatches in a row not acknowledged: out of the "
                              "rotation until you go off duty and on duty again",
    # rejections (reject(...) in the Function; answered by the gateway where it checks first)
    "reject.unit_not_free": "unit {unit:id} is not free and on duty",
    "reject.incident_state": "incident {incident:id} is {state:state}",
    "reject.merge_self": "cannot merge an incident into itself",
    "reject.split_only": "cannot split the only alarm of incident {incident:id}",
    "reject.alarm_unknown": "alarm {alarm:id} is unknown or expired",
    "reject.alarm_elsewhere": "alarm {alarm:id} is not part of incident {incident:id}",
    "reject.unknown_incident": "unknown incident {incident:id}",
    "reject.not_unresponsive": "unit {unit:id} is not unresponsive",
    "reject.not_assigned": "unit {unit:id} is not assigned to incident {incident:id}",
    "reject.decline_answered": "only an unacknowledged dispatch can be declined",
    "reject.not_awaiting": "dispatch of {incident:id} to {unit:id} is not awaiting acknowledgement",
}  # fmt: skip
"""Every machine-written form: catalogue key -> template."""

MACHINE_EVENTS: Final = frozenset(
    {"dispatched", "escalated", "merged", "report", "unresponsive", "released", "closed"}
)
"""Events whose detail the Function writes (a ``closed`` one only without an operator's note);
the others carry what a person typed."""


class _Form(NamedTuple):
    key: str
    pattern: re.Pattern[str]
    kinds: dict[str, str]


def _compile(key: str, template: str) -> _Form:
    kinds = dict(_SLOT.findall(template))
    parts, at = [], 0
    for slot in _SLOT.finditer(template):
        parts.append(re.escape(template[at : slot.start()]))
        parts.append(f"(?P<{slot.group(1)}>{_KINDS[slot.group(2)]})")
        at = slot.end()
    parts.append(re.escape(template[at:]))
    return _Form(key, re.compile("".join(parts)), kinds)


def _index(forms: Mapping[str, str]) -> dict[str, list[_Form]]:
    """Forms by their first word (a form that starts with a value under ``""``)."""
    index: dict[str, list[_Form]] = {}
    for key, template in forms.items():
        first = "" if template.startswith("{") else template.split(" ", 1)[0]
        index.setdefault(first, []).append(_compile(key, template))
    return index


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


class FormSet:
    """Templates (``key -> template`` with ``{name:kind}`` slots) read back from the text they
    wrote; ``whys`` the texts a ``why`` slot may hold (``key -> text``)."""

    def __init__(self, forms: Mapping[str, str], whys: Mapping[str, str] | None = None) -> None:
        self._forms = _index(forms)
        self._whys = {text: key for key, text in (whys or {}).items()}

    def parse(self, text: str | None) -> Parsed | None:
        """The form of ``text`` with its parameters; ``None`` for anything else (free text,
        ``None``, a form this version does not know). Never raises."""
        if not text:
            return None
        candidates = self._forms.get(text.split(" ", 1)[0], [])
        for form in (*candidates, *self._forms.get("", ())):
            match = form.pattern.fullmatch(text)
            if match is None:
                continue
            args: dict[str, Arg] = {}
            for name, value in match.groupdict().items():
                kind = form.kinds[name]
                args[name] = (_number(value) if kind == "num"
                              else self.reason(value) if kind == "why" else value)  # fmt: skip
            return Parsed(form.key, args)
        return None

    def reason(self, text: str) -> dict[str, Any]:
        """A nested reason: ``{"key": ..., "args": {}}`` when known, else ``{"text": text}``."""
        key = self._whys.get(text)
        return {"key": key, "args": {}} if key else {"text": text}


_DETAILS: Final = FormSet(FORMS, WHY_FORMS)


def parse(text: str | None) -> Parsed | None:
    """The form of a machine-written ``text`` with its parameters; ``None`` for anything else
    (free text, ``None``, a form this version does not know). Never raises."""
    return _DETAILS.parse(text)


def reason(text: str) -> dict[str, Any]:
    """A nested reason: ``{"key": ..., "args": {}}`` when known, else ``{"text": text}``."""
    return _DETAILS.reason(text)


def label(view: dict[str, Any], field: str = "detail") -> dict[str, Any]:
    """``view`` with ``<field>_key`` and ``<field>_args`` beside its ``field`` when that is a
    machine-written form (``view`` itself, changed)."""
    found = parse(view.get(field))
    if found is not None:
        view[f"{field}_key"], view[f"{field}_args"] = found
    return view


def event_view(view: dict[str, Any]) -> dict[str, Any]:
    """An incident event's view (``wire.to_builtins`` of it) with ``detail_key`` and
    ``detail_args`` when the Function wrote its detail."""
    if view.get("event") in MACHINE_EVENTS:
        label(view)
    return view
