"""The front's generated Kamailio config: what it contains, what it refuses, and that `kamailio -c`
accepts it (the binary parses the config only: no sockets are opened, no network)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from ivr.config import EngineConfig
from ivr.front.render import (
    SYSTEM_CA_BUNDLE,
    dispatcher_text,
    render_config,
    tls_config_text,
    uacreg_table_text,
    write_dispatcher,
    write_registrations,
)
from ivr.front.rpc import parse_dispatcher_list
from ivr.front.settings import FrontError, FrontSettings, Registration
from ivr.front.tools import check_config


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
        ("listen", ["sctp:127.0.0.1:5061"], "not udp:HOST:PORT"),
        ("listen", ["tls:127.0.0.1:5061"], "needs tls_certificate and tls_private_key"),
        ("registrations", [Registration("c", "sip:192.0.2.1", "u", "p", contact="")] * 2, "unique"),
        ("registrations", [Registration("c", "sip:192.0.2.1;transport=tcp", "u", "p")],
         "no tcp: socket"),
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
    write_dispatcher(path, ["10.0.0.2:5070"], probe_first=True)  # an edge's remote workers
    assert "1 sip:10.0.0.2:5070 9 0" in path.read_text()  # inactive and probed
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


SECRET = "pa:ss\\word"


def registered(tmp_path: Path, **kw: object) -> FrontSettings:
    return settings(tmp_path, registrations=[
        Registration("carrier", "sip:192.0.2.10:5080", "1000", SECRET, expires=300),
        Registration("backup", "sips:sip.example.net", "2000", "0th3r-s3cret", realm="example"),
    ], listen=["udp:127.0.0.1:5060", "tls:127.0.0.1:5061"], **kw)


def test_registrations_render_without_secrets(tmp_path: Path) -> None:
    s = registered(tmp_path, tls_certificate=cert(tmp_path)[0], tls_private_key=cert(tmp_path)[1])
    assert SECRET not in repr(s) and "0th3r-s3cret" not in repr(s)
    cfg = render_config(s)
    assert SECRET not in cfg and "0th3r-s3cret" not in cfg
    assert 'loadmodule "uac.so"' in cfg and 'loadmodule "db_text.so"' in cfg
    assert f'modparam("uac", "reg_db_url", "text://{tmp_path}/uacreg")' in cfg
    assert 'modparam("uac", "reg_contact_addr", "127.0.0.1:5060")' in cfg
    assert 'if ($rU == "carrier" && $tU != $null' in cfg and "$rU = $tU;" in cfg

    rows = uacreg_table_text(s).splitlines()
    assert rows[0].startswith("id(int,auto) l_uuid(string)")
    # ':' and '\' escaped for db_text; the registrar is the auth proxy; contact per transport
    assert rows[1] == ("1:carrier:1000:127.0.0.1\\:5060:1000:192.0.2.10\\:5080::1000:pa\\:ss\\\\word::"
                       "sip\\:192.0.2.10\\:5080:300:0:0:127.0.0.1\\:5060:udp\\:127.0.0.1\\:5060")
    assert rows[2].split(":")[1:4] == ["backup", "2000", "127.0.0.1\\"]
    assert "sip\\:sip.example.net;transport=tls" in rows[2]
    assert "127.0.0.1\\:5061;transport=tls:tls\\:127.0.0.1\\:5061" in rows[2]

    directory = write_registrations(s)
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in ("uacreg", "version"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert (directory / "version").read_text().splitlines()[1] == "uacreg:5"


def test_registration_on_a_wildcard_listen_needs_a_contact(tmp_path: Path) -> None:
    reg = Registration("carrier", "sip:192.0.2.10", "1000", "pw")
    with pytest.raises(ValueError, match="set the trunk's contact"):
        settings(tmp_path, listen=["udp:0.0.0.0:5060"], registrations=[reg])
    s = settings(tmp_path, listen=["udp:0.0.0.0:5060"],
                 registrations=[Registration("carrier", "sip:192.0.2.10", "1000", "pw",
                                             contact="203.0.113.5:5060")])
    assert s.contact_for(s.registrations[0]) == ("203.0.113.5:5060", "")


def test_registrar_address_is_trusted_and_passwords_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IVR_UNIT_PW", "from-env")
    config = EngineConfig.model_validate({"trunks": [
        {"name": "carrier", "registrar": "sip:192.0.2.10", "username": "1000",
         "password_env": "IVR_UNIT_PW", "realm": "carrier.net", "expires": 120},
        {"name": "byname", "registrar": "sip:sip.example.net", "username": "7",
         "password_env": "IVR_UNIT_PW"},
    ]})
    s = FrontSettings.from_config(config, tmp_path)
    assert s.trusted == ["192.0.2.10/32"]  # a host name is not an address to trust
    assert [(r.name, r.password, r.realm, r.expires) for r in s.registrations] == [
        ("carrier", "from-env", "carrier.net", 120), ("byname", "from-env", "", 600)]


def cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate made here (openssl CLI)."""
    crt, key = tmp_path / "front.crt", tmp_path / "front.key"
    if not crt.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                       check=True, capture_output=True, timeout=60)
    return crt, key


def test_tls_listen_renders_module_and_profile(tmp_path: Path) -> None:
    crt, key = cert(tmp_path)
    s = settings(tmp_path, listen=["udp:127.0.0.1:5060", "tls:127.0.0.1:5061"],
                 tls_certificate=crt, tls_private_key=key)
    cfg = render_config(s)
    assert "listen=tls:127.0.0.1:5061\n" in cfg and "enable_tls=yes" in cfg
    assert "disable_tcp=yes" not in cfg  # tls runs over tcp
    assert f'modparam("tls", "config", "{tmp_path}/tls.cfg")' in cfg
    profile = tls_config_text(s)
    assert f"certificate = {crt}" in profile and f"private_key = {key}" in profile
    assert "[server:default]" in profile and "method = TLSv1.2+" in profile
    # no outgoing TLS of our own: the CA bundle is not loaded (it costs ~10 s of startup)
    assert "ca_list" not in profile
    sips = registered(tmp_path, tls_certificate=crt, tls_private_key=key)
    assert f"ca_list = {SYSTEM_CA_BUNDLE}" in tls_config_text(sips)  # a sips: registrar is verified
    with pytest.raises(ValueError, match="does not exist"):
        settings(tmp_path, listen=["tls:127.0.0.1:5061"], tls_certificate=tmp_path / "nope.crt",
                 tls_private_key=key)


def test_kamailio_accepts_tls_and_registrations(tmp_path: Path) -> None:
    crt, key = cert(tmp_path)
    s = registered(tmp_path, tls_certificate=crt, tls_private_key=key)
    path = tmp_path / "kamailio.cfg"
    path.write_text(render_config(s))
    (tmp_path / "tls.cfg").write_text(tls_config_text(s))
    write_dispatcher(tmp_path / "dispatcher.list", [])
    write_registrations(s)
    asyncio.run(check_config(path, tmp_path))


def test_the_shipped_deploy_config_maps_to_a_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr.config import load_config

    monkeypatch.setenv("TRUNK_PASSWORD", "pw")
    s = FrontSettings.from_config(load_config(Path(__file__).parents[2] / "deploy" / "ivr.multi-node.yaml"),
                                  tmp_path)
    (reg,) = s.registrations
    assert s.contact_for(reg) == ("198.51.100.20:5060", "")
    assert "carrier" in render_config(s) and "pw" not in uacreg_table_text(s).splitlines()[0]


@pytest.mark.parametrize(
    ("flags", "word"),
    [(0, "pending"), (16 | 2, "registering"), (16 | 8 | 2, "registering"), (16 | 4, "registered"),
     (16 | 4 | 2, "registered"), (16, "failed"), (16 | 4 | 1, "disabled")],
)
def test_registration_flags_read_as_words(flags: int, word: str) -> None:
    from ivr.front.rpc import registration_word

    assert registration_word(flags) == word
