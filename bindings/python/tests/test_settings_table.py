"""The package's table of settings (last_call.settings) against the
native library's own list (gs_setting_names, itself held to every GS_*
constant of the crates by tests/settings_list.rs): the two cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from last_call import ConfigError, _native, settings


def test_the_table_has_exactly_the_runtimes_settings_and_the_packages_own():
    native = _native.setting_names()
    assert len(native) == len(set(native)) >= 27
    assert set(settings.runtime_names()) == set(native)
    package = {s.name for s in settings.SETTINGS if s.read_by == settings.PACKAGE}
    assert package == {
        "GS_EXPECTED_STREAMS",
        "GS_STREAM_PUBLIC_URL",
        "GS_HEALTH_BLUEPRINT",
        "GS_DRAIN_ENDPOINT",
        "GS_METRICS_ENDPOINT",
        "GS_URL_PREFIX",
    }
    assert not package & set(native)


def test_every_name_has_the_prefix_and_one_keyword():
    keywords = [s.keyword for s in settings.SETTINGS]
    assert len(keywords) == len(set(keywords))
    for setting in settings.SETTINGS:
        assert setting.name.startswith("GS_")
        assert setting.name == "GS_" + setting.keyword.upper()
        assert settings.by_keyword(setting.keyword) is setting


def test_the_runtime_refuses_a_name_it_does_not_read():
    with pytest.raises(Exception, match="not a setting"):
        _native.set_setting("GS_EXPECTED_STREAMS", "3")


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", 6, "6"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", 0.5, "0.5"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", float("inf"), "inf"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", " 7 ", "7"),
        ("GS_STREAM_QUEUE_EVENTS", 64.0, "64"),
        ("GS_STREAM_STALL_SECONDS", 0.001, "0.001"),
        ("GS_STREAM_HISTORY_SECONDS", "999999999", "999999999"),
        ("GS_STREAM_CORS_ORIGINS", ["https://a.example", "https://b.example"], "https://a.example,https://b.example"),
        ("GS_HEALTH_BLUEPRINT", False, "false"),
        ("GS_SECOND_SIGNAL", "EXIT", "exit"),
    ],
)
def test_a_python_value_becomes_the_text_the_variable_would_hold(name, value, text):
    setting = settings.by_name(name)
    assert setting is not None
    assert settings.to_text(setting, value, "here") == text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", True),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", "soon"),
        ("GS_SHUTDOWN_TIMEOUT_SECONDS", -1),
        ("GS_EXIT_WATCHDOG_STATUS", 256),
        ("GS_STREAM_QUEUE_EVENTS", 2.5),
        ("GS_PROBE_ADDR", 8081),
        ("GS_DRAIN_TOKEN", ""),
        ("GS_HEALTH_BLUEPRINT", "perhaps"),
        # The runtime's exclusive bounds, refused here too (where it was
        # given is known here; the hub, starting later, knows only the name).
        ("GS_STREAM_STALL_SECONDS", 0),
        ("GS_STREAM_HEARTBEAT_SECONDS", 1e9),
        ("GS_STREAM_IDLE_SECONDS", "0"),
        ("GS_HEARTBEAT_STALE_SECONDS", 0),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_naming_where_it_was_given(name, value):
    setting = settings.by_name(name)
    assert setting is not None
    with pytest.raises(ConfigError, match=r"app\.config"):
        settings.to_text(setting, value, "app.config['X']")


def test_an_unknown_environment_variable_is_reported_once_with_the_closest(monkeypatch, caplog):
    caplog.set_level("WARNING", logger="last_call")
    monkeypatch.setenv("GS_DRAIN_DELAY", "3")
    settings.report_unknown_environment()
    settings.report_unknown_environment()
    reports = [r.getMessage() for r in caplog.records if "GS_DRAIN_DELAY " in r.getMessage()]
    assert len(reports) == 1, reports
    assert "did you mean GS_DRAIN_DELAY_SECONDS?" in reports[0]


def _documented_settings() -> set[str]:
    """Every ``GS_*`` name in the first cell of a table row of
    docs/configuration.md (a row may name two, as the routes' switches)."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `GS_"):
            names.update(re.findall(r"`(GS_[A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_docs_configuration_has_a_row_for_every_setting_and_none_for_a_setting_that_is_not():
    """The settings reference cannot drift from the code: every name the
    runtime reads (gs_setting_names) and the package reads has a row, and
    every row names a setting that exists."""
    known = set(_native.setting_names()) | {s.name for s in settings.SETTINGS}
    documented = _documented_settings()
    assert known - documented == set(), "settings without a row in docs/configuration.md"
    assert documented - known == set(), "rows in docs/configuration.md for no setting"
