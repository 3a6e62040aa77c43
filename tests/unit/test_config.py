"""The engine config: defaults, and load errors at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import dedent, position

from ivr.config import DEFAULTS_FILE, SipSettings, load_config
from ivr.errors import ProblemsError


def test_built_in_defaults_load_when_there_is_no_ivr_yaml(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.source == str(DEFAULTS_FILE)
    assert config.calendars["business"].tz == "America/New_York"
    assert "general" in config.queues


def test_ivr_yaml_in_the_working_directory_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ivr.yaml").write_text("queues: {only: {}}\n")
    config = load_config()
    assert config.source == "ivr.yaml"
    assert list(config.queues) == ["only"]
    assert config.calendars == {}


def test_durations_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "ivr.yaml"
    path.write_text("queues: {q: {wrap_up: 500ms, max_wait: 2m}}\n")
    q = load_config(path).queues["q"]
    assert (q.wrap_up, q.max_wait) == (0.5, 120.0)


@pytest.mark.parametrize(
    ("text", "needle", "message"),
    [
        (
            """
            calendars:
              business:
                tz: America/Nowhere
            """,
            "tz:", "calendars.business.tz: unknown time zone 'America/Nowhere'",
        ),
        (
            """
            sip:
              listen: ["udp:0.0.0.0:5060"]
              max_callz: 10
            """,
            "max_callz", "unknown field 'sip.max_callz'",
        ),
        (
            """
            flows: flows/
            colour: blue
            """,
            "colour", "unknown field 'colour'",
        ),
        (
            """
            sip:
              listen: ["0.0.0.0:5060"]
            """,
            "listen", "is not proto:host:port",
        ),
        (
            """
            calendars:
              care:
                weekly: {mon-fri: "8-18"}
            """,
            "weekly", "calendars.care.weekly: '8-18' is not a time range like 08:00-18:00",
        ),
        (
            """
            calendars:
              care:
                holidays: [christmas]
            """,
            "christmas", "calendars.care.holidays.0: Input should be a valid date",
        ),
        (
            """
            queues:
              general: {wrap_up: soon}
            """,
            "wrap_up", "queues.general.wrap_up: 'soon' is not a duration",
        ),
        (
            """
            speech:
              asr: {engine: kaldi}
            """,
            "engine",
            "speech.asr.engine: Input should be 'pocketsphinx', 'vosk', 'whisper' or 'none'",
        ),
        ("- a\n- list\n", "- a", "the engine config must be a mapping"),
        ("sip: [unclosed\n", "\n", "YAML syntax error"),
    ],
)
def test_config_problems_are_positioned(tmp_path: Path, text: str, needle: str, message: str) -> None:
    path = tmp_path / "ivr.yaml"
    body = dedent(text)
    path.write_text(body)
    with pytest.raises(ProblemsError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.file == str(path)
    if needle == "\n":  # YAML syntax errors point at where the parser gave up: the end
        assert problem.line == 2
    else:
        assert (problem.line, problem.col) == position(body, needle)
    assert message in problem.message, problem.message


def test_missing_config_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ProblemsError, match="cannot read file"):
        load_config(tmp_path / "absent.yaml")


def test_the_shipped_deploy_config_loads() -> None:
    from pathlib import Path

    from ivr.config import load_config

    config = load_config(Path(__file__).parents[2] / "deploy" / "ivr.multi-node.yaml")
    assert config.bus.mqtt == "mqtts://broker.internal:8883"
    assert (config.bus.username, config.bus.password_env) == ("ivr-node", "IVR_MQTT_PASSWORD")
    assert config.http.tokens_file == Path("/etc/ivr/api-tokens")
    assert config.trunks[0].addresses == ["203.0.113.10/32"]
    assert {"general", "cards"} <= set(config.queues)


def test_rtp_ports_give_each_worker_its_own_slice_inside_the_range() -> None:
    sip = SipSettings(rtp_ports="10000-10200", calls_per_worker=4)
    slices = [sip.rtp_slice(n) for n in range(1, 7)]
    assert slices[0] == (10000, 32)
    spans = [set(range(first, first + count)) for first, count in slices[:6]]
    assert all(not (a & b) for i, a in enumerate(spans) for b in spans[i + 1:])  # disjoint
    assert all(first % 2 == 0 and first + count <= 10200 for first, count in slices)
    assert sip.rtp_slice(7) == slices[0]  # more workers than slices: they wrap around
    with pytest.raises(ValueError, match="lo-hi"):
        SipSettings(rtp_ports="20000-10000")
    with pytest.raises(ValueError, match="lo-hi"):
        SipSettings(rtp_ports="80")


@pytest.mark.parametrize(("sip", "lib", "cores", "limits"), [
    # auto: max_calls spread over one worker per core, exactly max_calls in all
    ({"max_calls": 50}, 512, 2, [25, 25]),
    ({"max_calls": 41}, 512, 2, [21, 20]),
    ({"max_calls": 600}, 512, 2, [300, 300]),
    ({"max_calls": 1}, 512, 2, [1]),
    # the library's limit wins over the core count: the PyPI wheel carries 4 calls
    ({"max_calls": 50}, 4, 2, [4] * 11 + [3] * 2),
    ({"max_calls": 1200}, 512, 2, [400, 400, 400]),
    # an explicit per-worker cap is a smaller blast radius: more workers
    ({"max_calls": 44, "calls_per_worker": 4}, 512, 2, [4] * 11),
    ({"max_calls": 30, "calls_per_worker": 8}, 512, 2, [8, 8, 7, 7]),
    ({"max_calls": 30, "calls_per_worker": 8}, 4, 2, [4] * 6 + [3] * 2),
    ({"max_calls": 90, "workers": 3}, 512, 2, [30, 30, 30]),
])
def test_worker_limits_sum_to_max_calls_within_the_library(
        sip: dict[str, object], lib: int, cores: int, limits: list[int]) -> None:
    settings = SipSettings.model_validate(sip)
    got = settings.worker_limits(lib, cores)
    assert got == limits
    assert sum(got) == settings.max_calls and max(got) <= lib


def test_calls_per_worker_is_auto_or_a_positive_number() -> None:
    assert SipSettings().calls_per_worker == "auto"
    with pytest.raises(ValueError):
        SipSettings(calls_per_worker=0)
    with pytest.raises(ValueError):
        SipSettings.model_validate({"calls_per_worker": "many"})
