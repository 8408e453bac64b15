"""Chinese first: one catalogue per language, every key translated, every key a page or
module uses present, and the language a person gets (switch, cookie, browser, city)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.testing import gateway_client
from polewatch import i18n
from polewatch.settings import Settings, SettingsError, load

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("gateway", "polewatch", "analytics", "simulators", "edge", "dispatcher")
USES = (
    re.compile(r"""\bt(?:Or)?\(\s*["']([a-z0-9_.]+)["']"""),  # t("key"), tOr("key", ...)
    re.compile(r"""data-i18n(?:-[a-z-]+)?=["']([a-z0-9_.]+)["']"""),  # static markup
    re.compile(r"""\btranslate\(\s*["']([a-z0-9_.]+)["']"""),  # server side
    re.compile(r"""\b_\(\s*["']([a-z0-9_.]+)["']"""),  # bound translators: _("key")
    re.compile(r"\{\{t:([a-z0-9_.]+)\}\}"),  # server-rendered templates
)


def used_keys() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".js", ".html") or not path.is_file():
                continue
            text = path.read_text("utf-8")
            for pattern in USES:
                for key in pattern.findall(text):
                    if "." in key:  # message keys always have an area: "citizen.help"
                        found.setdefault(key, str(path.relative_to(ROOT)))
    return found


def test_every_key_is_translated_into_every_language() -> None:
    english = i18n.catalogue(i18n.ENGLISH)
    assert len(english) > 50
    for language in i18n.LANGUAGES:
        messages = i18n.catalogue(language)
        missing = sorted(set(english) - set(messages))
        extra = sorted(set(messages) - set(english))
        assert not missing, f"{language} lacks translations of {missing}"
        assert not extra, f"{language} has keys English lacks: {extra}"
        empty = sorted(k for k, v in messages.items() if not v.strip())
        assert not empty, f"{language} has empty messages {empty}"
        for key, text in messages.items():
            assert i18n.placeholders(text) == i18n.placeholders(english[key]), (language, key)


def test_chinese_catalogue_is_chinese() -> None:
    chinese = i18n.catalogue(i18n.CHINESE)
    english = i18n.catalogue(i18n.ENGLISH)
    han = re.compile(r"[\u4e00-\u9fff]")
    # A copied English text is a missing translation: only symbols and names may be equal.
    same = [k for k, v in chinese.items() if v == english[k] and re.search(r"[a-z]{3}", v)]
    assert not same, f"untranslated (English in the Chinese catalogue): {same}"
    assert sum(1 for v in chinese.values() if han.search(v)) > 0.8 * len(chinese)


def test_every_key_a_page_or_module_uses_exists() -> None:
    keys = used_keys()
    assert "citizen.help" in keys  # the scan sees the pages
    missing = {k: where for k, where in keys.items() if k not in i18n.catalogue(i18n.ENGLISH)}
    assert not missing, f"keys used but not in the catalogues: {missing}"


def test_lookup_falls_back_to_english_then_to_the_key() -> None:
    assert i18n.translate("citizen.help", "zh-CN") == "求助"
    assert i18n.translate("citizen.help", "fr") == "Help"
    assert i18n.translate("citizen.unit", "en", unit="P-7") == "Unit P-7"
    assert i18n.translate("no.such.key", "zh-CN") == "no.such.key"


def test_accept_language_picks_the_best_language_we_have() -> None:
    assert i18n.negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert i18n.negotiate("en-US,en;q=0.9") == "en"
    assert i18n.negotiate("fr-FR, en;q=0.5, zh;q=0.4") == "en"
    assert i18n.negotiate("de-DE") == "zh-CN"  # a Chinese city's default
    assert i18n.negotiate("de-DE", default="en") == "en"
    assert i18n.negotiate("zh-TW") == "zh-CN"  # Traditional is not offered: the default
    assert i18n.negotiate("zh-TW, en;q=0.1") == "en"
    assert i18n.negotiate("en;q=0, zh") == "zh-CN"
    assert i18n.choose("en", "zh-CN") == "en"  # the switch wins over the browser


@given(st.text(max_size=200), st.sampled_from(i18n.LANGUAGES))
def test_any_accept_language_header_gives_a_language_we_have(header: str, default: str) -> None:
    assert i18n.negotiate(header, default) in i18n.LANGUAGES
    assert i18n.choose(header, header, default) in i18n.LANGUAGES


async def test_pages_get_their_catalogue_from_the_gateway(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        zh = await _catalogue(client, {"Accept-Language": "zh-CN,zh;q=0.9"})
        assert zh["lang"] == "zh-CN" and zh["messages"]["citizen.help"] == "求助"
        assert zh["timezone"] == "Asia/Shanghai"
        assert zh["languages"] == {"zh-CN": "中文", "en": "English"}
        en = await _catalogue(client, {"Accept-Language": "en-US,en;q=0.9"})
        assert en["lang"] == "en" and en["messages"]["citizen.help"] == "Help"
        assert (await _catalogue(client, {}))["lang"] == "zh-CN"  # no header: the city's

        # the switch: ?lang= sets the cookie, which then beats the browser's header
        chosen = await client.get("/i18n/catalogue.json?lang=en",
                                  headers={"Accept-Language": "zh-CN"})  # fmt: skip
        assert chosen.cookies[i18n.COOKIE].value == "en"
        assert chosen.headers["Content-Language"] == "en"
        again = await _catalogue(client, {"Accept-Language": "zh-CN"})
        assert again["lang"] == "en"

    async with gateway_client(redis_url, language="en", timezone="Europe/London") as client:
        city = await _catalogue(client, {"Accept-Language": "de"})
        assert city["lang"] == "en" and city["timezone"] == "Europe/London"


async def _catalogue(client: TestClient[Any, Any], headers: dict[str, str]) -> Any:
    response = await client.get("/i18n/catalogue.json", headers=headers)
    assert response.status == 200
    return await response.json()


def test_language_and_timezone_settings_fail_at_start_naming_the_key() -> None:
    assert load(Settings, section="x", env={}).timezone == "Asia/Shanghai"
    assert load(Settings, section="x", env={}).language == "zh-CN"
    for env, key in (({"POLEWATCH_LANGUAGE": "fr"}, "language"),
                     ({"POLEWATCH_TIMEZONE": "Asia/Shenzhen"}, "timezone"),
                     ({"POLEWATCH_TIMEZONE": "../../etc/passwd"}, "timezone")):  # fmt: skip
        with pytest.raises(SettingsError, match=key):
            load(Settings, section="x", env=env)
