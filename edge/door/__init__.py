"""The access-control agent: door-controller events in, geolocated door alarms out.

Intake (both on the agent, see :mod:`edge.door.agent`):

* ``POST /events`` (HTTP webhook): a JSON object or an array of them. ``200 {"accepted": n,
  "alarms": [ids]}``; ``400 {"error": reason}`` for anything invalid (the whole body is
  rejected); ``GET /status`` returns the counters.
* TCP JSON lines: one JSON object per ``\\n``-terminated line (at most 64 KiB); each line is
  answered with one line, ``{"ok": true, "alarms": [ids]}`` or ``{"ok": false, "error": reason}``.
  A bad line is answered, counted and logged; the connection stays open.

One event (``docs/door-events.md`` has the full tables)::

    {"controller": "ctl-7", "door": "D-0042", "event": "card_granted",
     "ts": 1732550000.25, "reader": "R1", "card": "0012345678", "direction": "in"}

``controller`` (required), ``door`` (required except for ``heartbeat``), and one of
``event`` (a name below), ``code`` (a ZKTeco event number) or ``bacnet`` (a BACnet Access
Door ``door-alarm-state``); optional ``ts`` (Unix seconds, controller clock; the agent's clock
when absent), ``reader``, ``card``, ``direction`` (``in``/``out``), ``seq``.

Event names: ``door_opened``, ``door_closed``, ``card_granted``, ``card_denied``,
``exit_request``, ``forced_open``, ``held_open``, ``tamper``, ``anti_passback``,
``heartbeat``, and ``person_crossed`` (from the door camera: ``direction`` required; the video
agent posts these for the tailgating rule with :class:`edge.door.crossings.CrossingReporter`,
or calls :meth:`edge.door.rules.DoorRules.person_crossed` in process).

Alarms raised (:mod:`edge.door.rules`): ``door_forced``, ``door_held``,
``invalid_card_burst``, ``anti_passback``, ``tailgating``, ``door_tamper``,
``controller_offline``.

OSDP readers (through libosdp, optional: ``pip install 'polewatch[osdp]'``) feed the same
rules: the agent acts as their control panel (:mod:`edge.door.osdp`).
"""
