"""The front's generated Kamailio config: what it contains, what it refuses, and that `kamailio -c`
accepts it (the binary parses the config only: no sockets are opened, no network)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from ivr.config import EngineConfig
from ivr.front.kamailio import (
    FrontError,
    FrontSettings,
    check_config,
    dispatcher_text,
    parse_dispatcher_list,
    render_config,
    write_dispatcher,
)


def settings(tmp_path: Path, **kw: object) -> FrontSettings:
    return FrontSettings(runtime_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_listen_sockets_aliases_and_transports(tmp_path: Path) -> None:
    cfg = render_config(settings(tmp_path, listen=["udp:127.0.0.1:5060", "tcp:127.0.0.1:5061"]))
    assert "listen=udp:127.0.0.1:5060\n" in cfg
    assert "listen=tcp:127.0.0.1:5061\n" in cfg
    assert 'alias="127.0.0.1:5060"' in cfg and 'alias="127.0.0.1:5061"' in cfg
    assert "disable_tcp=yes" not in cfg  # a tcp socket needs tcp enabled

    udp_only = render_config(settings(tmp_path, listen=["udp:10.1.2.3:5070"]))
    assert "disable_tcp=yes" in udp_only
    assert "sip:ivr-front@10.1.2.3:5070" in udp_only  # probes say who they are from


def test_wildcard_listen_gets_no_alias_and_probes_from_loopback(tmp_path: Path) -> None:
    cfg = render_config(settings(tmp_path, listen=["udp:0.0.0.0:5060"]))
    assert "listen=udp:0.0.0.0:5060" in cfg
    assert "alias=" not in cfg
    assert "sip:ivr-front@127.0.0.1:5060" in cfg


def test_acl_cidrs_are_normalised_and_rendered(tmp_path: Path) -> None:
    cfg = render_config(settings(tmp_path, allow_from=["203.0.113.7/24", "198.51.100.1", "2001:db8::/32"]))
    assert 'is_in_subnet("$si", "203.0.113.0/24")' in cfg
    assert 'is_in_subnet("$si", "198.51.100.1/32")' in cfg
    assert 'is_in_subnet("$si", "2001:db8::/32")' in cfg
    assert 'sl_send_reply("403", "Forbidden")' in cfg


def test_empty_acl_allows_everyone(tmp_path: Path) -> None:
    cfg = render_config(settings(tmp_path))
    acl = cfg[cfg.index("route[ACL]"):cfg.index("route[DISPATCH]")]
    assert "403" not in acl and "return 1;" in acl


def test_trusted_sources_skip_pike(tmp_path: Path) -> None:
    cfg = render_config(settings(tmp_path, trusted=["192.0.2.10", "192.0.2.128/25"],
                                 pike_density=7, pike_sampling_s=3, pike_remove_latency_s=9))
    classify = cfg[cfg.index("route[CLASSIFY]"):cfg.index("route[ACL]")]
    assert 'is_in_subnet("$si", "192.0.2.10/32")' in classify
    assert 'is_in_subnet("$si", "192.0.2.128/25")' in classify
    assert "ds_is_from_list" in classify  # the workers themselves are trusted too
    assert "setflag(FLT_NO_PIKE)" in classify
    assert "!isflagset(FLT_NO_PIKE) && !pike_check_req()" in cfg
    assert '"127.0.0.0/8"' in classify  # loopback skips pike by default ...
    off = render_config(settings(tmp_path, pike_exempt_loopback=False))
    assert '"127.0.0.0/8"' not in off  # ... unless told otherwise
    assert 'modparam("pike", "reqs_density_per_unit", 7)' in cfg
    assert 'modparam("pike", "sampling_time_unit", 3)' in cfg
    assert 'modparam("pike", "remove_latency", 9)' in cfg


def test_scanner_agents_form_one_case_insensitive_regex(tmp_path: Path) -> None:
    cfg = render_config(settings(tmp_path))
    line = next(ln for ln in cfg.splitlines() if "$ua =~" in ln)
    regex = re.search(r'\$ua =~ "([^"]+)"', line)
    assert regex is not None
    alternatives = regex.group(1).split("|")
    assert "friendly-scanner" in alternatives and "sipvicious" in alternatives
    assert "SIPVicious" not in alternatives  # the =~ match ignores case: one entry is enough
    assert {"sipcli", "VaxSIPUserAgent", "sundayddr", "pplsip"} <= set(alternatives)

    dotted = render_config(settings(tmp_path, scanner_agents=["evil.scan"]))
    assert '"evil[.]scan"' in dotted
    assert "$ua =~" not in render_config(settings(tmp_path, scanner_agents=[]))


def test_registrar_switch(tmp_path: Path) -> None:
    on = render_config(settings(tmp_path))
    assert 'save("location")' in on and 'lookup("location")' in on
    off = render_config(settings(tmp_path, registrar=False))
    assert "save(" not in off and "lookup(" not in off
    assert "Registrar Disabled" in off


def test_failover_and_paths(tmp_path: Path) -> None:
    cfg = render_config(settings(tmp_path, fr_timer_ms=900, probe_interval_s=5))
    assert 'ds_select_dst("1", "4")' in cfg
    assert 't_check_status("408|500|503")' in cfg and 'ds_mark_dst("ip")' in cfg
    assert 't_check_status("486|600")' in cfg
    assert 'modparam("tm", "fr_timer", 900)' in cfg
    assert 'modparam("dispatcher", "ds_ping_interval", 5)' in cfg
    assert f'"unix:{tmp_path}/kamailio_ctl"' in cfg
    assert f'"list_file", "{tmp_path}/dispatcher.list"' in cfg
    assert "loose_route()" in cfg and "record_route()" in cfg


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("listen", ["tls:127.0.0.1:5061"], "not udp:HOST:PORT"),
        ("listen", ["udp:localhost:5060"], "does not appear to be an IPv4 or IPv6"),
        ("listen", ["udp:127.0.0.1:99999"], "not udp:HOST:PORT"),
        ("listen", [], "at least one"),
        ("allow_from", ["10.0.0.0/33"], "allow_from entry"),
        ("trusted", ["carrier.example.net"], "trusted entry"),
        ("workers", ["127.0.0.1"], "not HOST:PORT"),
        ("scanner_agents", ['x"; exit; "'], "may only use"),
        ("pike_density", 0, "at least 1"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(tmp_path, **{field: value})


def test_runtime_dir_must_be_absolute_and_short() -> None:
    with pytest.raises(ValueError, match="absolute"):
        FrontSettings(runtime_dir=Path("var/front"))
    with pytest.raises(ValueError, match="too long"):
        FrontSettings(runtime_dir=Path("/tmp/" + "x" * 100))


def test_dispatcher_list(tmp_path: Path) -> None:
    assert dispatcher_text(["127.0.0.1:5070", "sip:10.0.0.2:5072"]).splitlines()[1:] == [
        "1 sip:127.0.0.1:5070 0 0 name=w1",
        "1 sip:10.0.0.2:5072 0 0 name=w2",
    ]
    path = tmp_path / "dispatcher.list"
    write_dispatcher(path, ["127.0.0.1:5070"])
    assert "1 sip:127.0.0.1:5070 0 0" in path.read_text()
    write_dispatcher(path, [])
    assert "sip:" not in path.read_text()
    assert not (tmp_path / "dispatcher.list.tmp").exists()


def test_parse_dispatcher_list() -> None:
    out = """{
\tNRSETS: 1
\tRECORDS: {
\t\tSET: {
\t\t\tID: 1
\t\t\tTARGETS: {
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.1:5072
\t\t\t\t\tFLAGS: IP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.1:5070
\t\t\t\t\tFLAGS: AP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""
    assert parse_dispatcher_list(out) == {"127.0.0.1:5072": "IP", "127.0.0.1:5070": "AP"}
    assert parse_dispatcher_list("") == {}


def test_from_engine_config(tmp_path: Path) -> None:
    config = EngineConfig.model_validate({
        "sip": {"listen": ["udp:127.0.0.1:5080", "tcp:127.0.0.1:5080"]},
        "allow_from": ["203.0.113.0/24"],
        "trunks": [{"name": "carrier", "addresses": ["198.51.100.7", "198.51.100.64/26"]}],
    })
    s = FrontSettings.from_config(config, tmp_path, ["127.0.0.1:6001"], pike_density=99)
    assert s.listen == ["udp:127.0.0.1:5080", "tcp:127.0.0.1:5080"]
    assert s.allow_from == ["203.0.113.0/24"]
    assert s.trusted == ["198.51.100.7/32", "198.51.100.64/26"]
    assert s.workers == ["127.0.0.1:6001"] and s.pike_density == 99


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"listen": ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"], "allow_from": ["10.0.0.0/8"],
         "trusted": ["192.0.2.1", "2001:db8::1"], "workers": ["127.0.0.1:5070", "127.0.0.1:5072"]},
        {"registrar": False, "scanner_agents": []},
    ],
)
def test_kamailio_accepts_the_rendered_config(tmp_path: Path, kw: dict[str, object]) -> None:
    s = settings(tmp_path, **kw)
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render_config(s))
    write_dispatcher(tmp_path / "dispatcher.list", s.workers)
    asyncio.run(check_config(cfg, tmp_path))


def test_kamailio_rejects_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render_config(settings(tmp_path)).replace("route(DISPATCH);", "no_such_function();"))
    with pytest.raises(FrontError, match="rejected"):
        asyncio.run(check_config(cfg, tmp_path))
