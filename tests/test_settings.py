"""Settings: built once from defaults, a TOML file and the environment; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from polewatch.settings import Settings, SettingsError, load


class Example(Settings, frozen=True, kw_only=True):
    ack_timeout_s: float = 30.0
    batch: int = 200
    radii_m: tuple[int, ...] = (1000, 3000)


def test_defaults_then_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "polewatch.toml"
    config.write_text('city = "dc"\n[example]\nbatch = 50\nack_timeout_s = 10\n')
    env = {"POLEWATCH_ACK_TIMEOUT_S": "12.5", "REDIS_URL": "redis://127.0.0.1:7000/0"}
    s = load(Example, section="example", env=env, config_file=config)
    assert s.city == "dc"
    assert s.batch == 50
    assert s.ack_timeout_s == 12.5
    assert s.redis_url == "redis://127.0.0.1:7000/0"
    assert s.radii_m == (1000, 3000)


def test_the_config_file_can_be_named_by_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[example]\nradii_m = [500, 2000, 8000]\n")
    s = load(Example, section="example", env={"POLEWATCH_CONFIG": str(config)})
    assert s.radii_m == (500, 2000, 8000)


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingsError) as err:
        load(Example, section="example", env={"POLEWATCH_BATCH": "lots"})
    assert "POLEWATCH_BATCH" in str(err.value)
    assert "batch" in str(err.value)


def test_a_bad_file_value_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[example]\nack_timeout_s = "soon"\n')
    with pytest.raises(SettingsError) as err:
        load(Example, section="example", env={}, config_file=config)
    assert "[example] ack_timeout_s" in str(err.value)
    assert str(config) in str(err.value)


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("[example]\nack_timeout = 5\n")
    with pytest.raises(SettingsError, match="unknown setting .*ack_timeout"):
        load(Example, section="example", env={}, config_file=config)


def test_other_sections_in_a_shared_file_are_left_to_their_services(tmp_path: Path) -> None:
    config = tmp_path / "shared.toml"
    config.write_text("[gateway]\nport = 8080\n[example]\nbatch = 7\n")
    assert load(Example, section="example", env={}, config_file=config).batch == 7


def test_a_missing_or_broken_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load(Example, section="example", env={}, config_file=tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[example\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load(Example, section="example", env={}, config_file=broken)


def test_zone_settings_fail_at_start_naming_the_key(tmp_path: Path, zones_file: Path) -> None:
    from dispatcher.settings import DispatcherSettings

    with pytest.raises(SettingsError, match="redis_cluster"):
        load(DispatcherSettings, section="dispatcher", env={"POLEWATCH_REDIS_CLUSTER": "true"})
    broken = tmp_path / "zones.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"properties": {}}]}')
    with pytest.raises(SettingsError, match="zones"):
        load(DispatcherSettings, section="dispatcher", env={"POLEWATCH_ZONES": str(broken)})
    with pytest.raises(SettingsError, match="serve_zones"):
        env = {"POLEWATCH_ZONES": str(zones_file), "POLEWATCH_SERVE_ZONES": '["atlantis"]'}
        load(DispatcherSettings, section="dispatcher", env=env)
    ok = load(DispatcherSettings, section="dispatcher",
              env={"POLEWATCH_ZONES": str(zones_file), "POLEWATCH_REDIS_CLUSTER": "true",
                   "POLEWATCH_SERVE_ZONES": '["futian", "luohu"]'})  # fmt: skip
    assert ok.served_zones() == ("futian", "luohu") and len(ok.zone_map().names) == 10
