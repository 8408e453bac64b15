"""The machine-written details of incident events (polewatch.details): every form the
dispatcher's Function can write is recognised (its templates are read out of dispatcher/lua, so
a new one without a parser entry fails here), free text passes through, nothing raises, and
every key is in both catalogues with the template's parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dispatcher import drive
from polewatch import details, i18n

LUA = Path(__file__).resolve().parents[1] / "dispatcher" / "lua"
ANCHORS = re.compile(
    r"\breject\(|\bdetail = |\bwithdraw\(inc, [a-z.]+, |\bwithdraw_all\([a-z]+, |\breason = "
    r"|\binc\.why = "
)
"""Where the Function writes text a person reads: an event's detail, a rejection, the reason a
unit is withdrawn (its phone shows it), why a dispatch went by straight line."""
DEAD_LETTER_ONLY = ("dispatcher error: ",)
"""Texts that only reach the dead-letter stream (for whoever runs the system), never a page."""
TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|\.\.|[A-Za-z_][A-Za-z0-9_.]*|[0-9.]+|\S")
IDS = st.from_regex(r"\A[A-Za-z0-9_.:@#/-]{1,20}\Z")
NUMBERS = st.integers(0, 10**6)
STATES = st.sampled_from(("closed", "cancelled", "merged", "resolved", "new"))
WHYS = st.sampled_from(sorted(details.WHY_FORMS.values()))
Template = list[str | tuple[str]]
"""Literal text, and (term,) where the Lua inserts a value."""


def expression(tokens: list[str], start: int) -> list[str]:
    """The tokens of the Lua expression that starts at ``start``: up to a comma or closing
    bracket of the call or table around it, or the end of its statement."""
    depth, out = 0, list[str]()
    for i, tok in enumerate(tokens[start:], start):
        if tok in "({":
            depth += 1
        elif tok in ")}":
            depth -= 1
            if depth < 0:
                break
        elif tok == "," and depth == 0:
            break
        elif tok == "\n":
            following = next((t for t in tokens[i:] if t != "\n"), "")
            if depth == 0 and out and ".." not in (out[-1], following) and out[-1] != "or":
                break
            continue
        out.append(tok)
    return out


def split(tokens: list[str], sep: str) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    depth = 0
    for tok in tokens:
        depth += (tok in "({") - (tok in ")}")
        if tok == sep and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


def strip(tokens: list[str]) -> list[str]:
    while tokens and tokens[0] == "(" and tokens[-1] == ")":
        tokens = tokens[1:-1]
    return tokens


def templates(tokens: list[str]) -> Iterator[Template]:
    """The texts an expression can give, as templates (pass-through values give none)."""
    for alternative in split(tokens, "or"):
        alternative = strip(alternative)
        if alternative[:2] == ["string.format", "("]:
            fmt, *rest = split(alternative[2:-1], ",")
            text = fmt[0][1:-1]
            out: Template = []
            for literal, spec in re.findall(r"(.*?)(%\.0f|%s|$)", text):
                out.append(literal)
                if spec:
                    out.append(("why",) if spec == "%s" else ("n",))
            yield [p for p in out if p]
            for arg in rest:  # the literals of `x or 'default'` are reasons of their own
                yield from (list[str | tuple[str]]([s[1:-1]]) for s in arg if s.startswith("'"))
            continue
        if not any(tok.startswith("'") for tok in alternative):
            continue
        yield [tok[1:-1] if len(p) == 1 and (tok := p[0]).startswith("'") else (" ".join(p),)
               for p in split(alternative, "..")]  # fmt: skip


def lua_templates() -> list[Template]:
    found: list[Template] = []
    lexer = re.compile(TOKEN.pattern + r"|\n")
    for path in sorted(LUA.glob("*.lua")):
        source = re.sub(r"--[^\n]*", "", path.read_text("utf-8"))
        tokens = lexer.findall(source)
        for match in ANCHORS.finditer(source):
            start = len(lexer.findall(source[: match.end()]))
            found.extend(templates(expression(tokens, start)))
    return found


def render(template: Template, values: dict[str, str]) -> str:
    return "".join(p if isinstance(p, str) else values[p[0]] for p in template)


def sample(term: str, data: st.DataObject) -> str:
    """A value the Lua could insert for ``term``."""
    if term == "why":
        return data.draw(WHYS)
    if "state" in term:
        return data.draw(STATES)
    if term in ("n", "m.evaluation") or term.startswith("C."):
        return str(data.draw(NUMBERS))
    return data.draw(IDS)


WRITTEN = [t for t in lua_templates()
           if not (isinstance(t[0], str) and t[0].startswith(DEAD_LETTER_ONLY))]  # fmt: skip


def test_the_lua_templates_are_found() -> None:
    joined = {render(t, {p[0]: "X" for p in t if isinstance(p, tuple)}) for t in WRITTEN}
    # one of each anchor, so a change of the Lua's shape cannot hide them all
    for text in ("unit X is not free and on duty", "straight-line X m: X", "closed by X",
                 "X dispatches in a row not acknowledged", "off duty", "evaluation X",
                 "no eligible unit on the road shortlist", "resolved by X",
                 "X dispatches in a row not acknowledged: out of the rotation until you go off "
                 "duty and on duty again", "no acknowledgement within X s"):  # fmt: skip
        assert text in joined, (text, sorted(joined))
    assert len(WRITTEN) >= 30


@given(st.data())
def test_every_form_the_function_writes_is_recognised(data: st.DataObject) -> None:
    seen = set()
    for template in WRITTEN:
        values = {p[0]: sample(p[0], data) for p in template if isinstance(p, tuple)}
        text = render(template, values)
        found = details.parse(text)
        if found is None:  # a reason given on its own (inc.why): known as a nested one
            assert details.reason(text).get("key"), f"no form in polewatch/details.py: {text!r}"
            continue
        seen.add(found.key)
        flat = {str(v) if not isinstance(v, dict) else details.WHY_FORMS[v["key"]]
                for v in found.args.values()}  # fmt: skip
        assert set(values.values()) <= flat, (text, found)
    assert seen == set(details.FORMS), f"forms the Lua never writes: {set(details.FORMS) - seen}"


def test_every_reason_of_a_straight_line_dispatch_is_known() -> None:
    for why in (drive.NO_GRAPH, drive.OFF_ROAD, drive.UNREACHABLE):
        assert details.reason(why)["key"] in details.WHY_FORMS
    found = details.parse("straight-line 850 m: " + drive.OFF_ROAD)
    assert found == (
        "detail.straight_line",
        {"distance_m": 850, "reason": {"key": "detail.why.off_road", "args": {}}},
    )
    unknown = details.parse("straight-line 12 m: a reason of a later version")
    assert unknown and unknown.args["reason"] == {"text": "a reason of a later version"}


@given(st.text(max_size=300))
def test_nothing_raises(text: str) -> None:
    found = details.parse(text)
    assert found is None or found.key in details.FORMS


@given(st.sampled_from(sorted(details.FORMS.values())), st.text(max_size=5), st.integers(0, 80))
def test_broken_forms_are_refused_or_recognised_never_raise(
    template: str, noise: str, at: int
) -> None:
    text = template[:at] + noise + template[at:]
    found = details.parse(text)
    assert found is None or found.key in details.FORMS


@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=80))
def test_free_text_passes_through(text: str) -> None:
    typed = "巡逻车已到达现场，" + text  # a person's note (Chinese and anything after it)
    assert details.parse(typed) is None
    view = details.event_view({"event": "declined", "detail": "off duty"})
    assert "detail_key" not in view  # a patrol's typed reason, even one that looks machine-made
    assert details.event_view({"event": "released", "detail": "off duty"})["detail_key"] == (
        "detail.off_duty"
    )


def test_every_key_is_in_both_catalogues_with_its_parameters() -> None:
    for language in i18n.LANGUAGES:
        messages = i18n.catalogue(language)
        for key, template in {**details.FORMS, **details.WHY_FORMS}.items():
            assert key in messages, f"{language} lacks {key}"
            names = set(re.findall(r"\{([a-z_]+):", template))
            assert i18n.placeholders(messages[key]) == names, (language, key)
