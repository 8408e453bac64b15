"""The texts edge agents write into an alarm, read back as catalogue keys.

A camera agent writes ``zone keep-off-lawn track 356``, a door agent ``door D-01: 3 denied
cards within 60 s``, a pole button ``pole alarm button pressed``: English, stored as written
(the archive, exports and searches read it). Pages that show an alarm's or an incident's
``text`` ask :func:`label` for the key of its form and show ``alarm.<form>`` in the reader's
language instead, like the dispatcher's details (:mod:`polewatch.details`).

A form is recognised only on an alarm of the type its agent raises with it, so a call-taker's
note that happens to read ``crowd gathering`` on a ``call`` stays as typed. The templates are
the agents' own (``tests/test_alarm_texts.py`` reads them out of ``edge/`` and fails on one
without a form here).
"""

from __future__ import annotations

from typing import Any, Final

from polewatch.details import FormSet, Parsed

CAMERA_RULES: Final = {
    "zone": "intrusion",
    "tripwire": "tripwire",
    "loitering": "loitering",
    "crowd": "crowd",
    "tamper": "tamper",
    "offline": "camera_offline",
    "motion": "motion",
    "no_parking": "no_parking",
}
"""A camera rule's kind (the first word of its alarm's text) -> the alarm type it raises (the
video agent raises these: ``edge.video.agent.to_alarm``; the dispatcher's priority table
knows them)."""

DOOR: Final = "door {door:id}: "
"""What a door agent writes before each of its texts."""

FORMS: Final[dict[str, tuple[str, str]]] = {
    "alarm.button": ("citizen_sos", "pole alarm button pressed"),
    # edge/door/rules.py
    "alarm.door_forced": ("door_forced", DOOR + "door opened without a card grant or exit request"),
    "alarm.door_forced_reported": ("door_forced", DOOR + "controller reports forced open"),
    "alarm.door_held": ("door_held", DOOR + "door open for {held_s:num} s"),
    "alarm.door_held_reported": ("door_held", DOOR + "controller reports held open"),
    "alarm.invalid_cards":
        ("invalid_card_burst", DOOR + "{denials:num} denied cards within {window_s:num} s"),
    "alarm.door_tamper": ("door_tamper", DOOR + "tamper switch"),
    "alarm.passback_reported": ("anti_passback", DOOR + "controller reports passback"),
    "alarm.passback_in": ("anti_passback", DOOR + "card used to go in twice without going out"),
    "alarm.passback_out": ("anti_passback", DOOR + "card used to go out twice without going in"),
    "alarm.tailgating": ("tailgating", DOOR + "{people:num} people went in on {cards:num} card(s)"),
    "alarm.controller_silent":
        ("controller_offline", DOOR + "controller {controller:id} silent for {silent_s:num} s"),
    # edge/video/agent.py: the rule's kind and name, and the track that broke it
    **{f"alarm.{rule}": (kind, f"{rule} {{name:word}}") for rule, kind in CAMERA_RULES.items()},
    **{
        f"alarm.{rule}_track": (kind, f"{rule} {{name:word}} track {{track:num}}")
        for rule, kind in CAMERA_RULES.items()
    },
}  # fmt: skip
"""Catalogue key -> (the alarm type it is written on, the agent's template)."""

_TYPES: Final = {key: kind for key, (kind, _) in FORMS.items()}
_FORMS: Final = FormSet({key: template for key, (_, template) in FORMS.items()})


def parse(text: str | None, alarm_type: str | None) -> Parsed | None:
    """The form of an agent's ``text`` on an alarm (or incident) of ``alarm_type``; ``None``
    for anything else (a person's words, a form of another type). Never raises."""
    found = _FORMS.parse(text)
    return found if found is not None and _TYPES[found.key] == alarm_type else None


def label(view: dict[str, Any]) -> dict[str, Any]:
    """``view`` (an alarm's, an incident's or a dispatch's) with ``text_key`` and ``text_args``
    beside its ``text`` when an agent wrote it (``view`` itself, changed)."""
    found = parse(view.get("text"), view.get("type"))
    if found is not None:
        view["text_key"], view["text_args"] = found
    return view
