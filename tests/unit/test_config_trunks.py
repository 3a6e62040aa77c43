"""Trunk registration and TLS in the engine config: what is refused at load, and that a missing
password variable is a clear error before anything starts (never a crash at the first REGISTER)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import IVR_BIN, dedent, position

from ivr.config import EngineConfig, load_config, parse_registrar
from ivr.errors import ConfigError, ProblemsError
from ivr.front.settings import FrontSettings

TRUNK = {"name": "carrier", "registrar": "sip:198.51.100.1:5060", "username": "1000",
         "password_env": "IVR_UNIT_TRUNK_PW"}


def config(**trunk: Any) -> EngineConfig:
    return EngineConfig.model_validate({"trunks": [{**TRUNK, **trunk}]})


@pytest.mark.parametrize(
    ("trunk", "message"),
    [
        ({"password_env": None}, "trunk 'carrier' registers, so it also needs password_env"),
        ({"username": None, "password_env": None}, "also needs username, password_env"),
        ({"registrar": None}, "also needs registrar"),
        ({"registrar": "carrier.example.net"}, "is not a sip: or sips: URI"),
        ({"registrar": "sip:1000@carrier.example.net"}, "names a user"),
        ({"registrar": "sip:carrier.example.net:99999"}, "bad port"),
        ({"registrar": "sip:carrier..net"}, "no valid host"),
        ({"registrar": "sip:carrier.example.net;lr"}, "only a transport=udp|tcp|tls"),
        ({"password_env": "TRUNK-PW"}, "is not an environment variable name"),
        ({"password": "inline"}, "Extra inputs are not permitted"),  # never in the file
        ({"expires": 5}, "greater than or equal to 10"),
        ({"expires": 100000}, "less than or equal to 86400"),
        ({"name": "my carrier"}, "may only use letters"),
        ({"username": "10 00"}, "not a valid SIP user part"),
        ({"realm": 'a"b'}, "realm must be"),
        ({"contact": "carrier.example.net:5060"}, "is not IP:PORT"),
    ],
)
def test_bad_trunk_fields_are_refused_at_load(trunk: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**trunk)


def test_realm_and_contact_need_a_registrar() -> None:
    with pytest.raises(ValueError, match="only apply with registrar"):
        EngineConfig.model_validate({"trunks": [{"name": "c", "realm": "x"}]})


def test_trunk_names_are_unique() -> None:
    with pytest.raises(ValueError, match="unique: carrier"):
        EngineConfig.model_validate({"trunks": [TRUNK, {"name": "carrier"}]})


def test_registrar_forms() -> None:
    assert parse_registrar("sip:198.51.100.1").uri == "sip:198.51.100.1"
    assert parse_registrar("sips:sip.example.net").uri == "sip:sip.example.net;transport=tls"
    assert parse_registrar("sip:[2001:db8::1]:5080;transport=TCP").uri == \
        "sip:[2001:db8::1]:5080;transport=tcp"


def test_missing_password_variable_names_trunk_and_variable(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.delenv("IVR_UNIT_TRUNK_PW", raising=False)
    c = config()
    with pytest.raises(ConfigError, match="trunk 'carrier': environment variable IVR_UNIT_TRUNK_PW"):
        c.check_secrets()
    with pytest.raises(ConfigError, match="IVR_UNIT_TRUNK_PW"):
        FrontSettings.from_config(c, tmp_path)
    monkeypatch.setenv("IVR_UNIT_TRUNK_PW", "")
    with pytest.raises(ConfigError, match="is not set"):  # empty counts as unset
        c.check_secrets()
    monkeypatch.setenv("IVR_UNIT_TRUNK_PW", "pw")
    c.check_secrets()


def test_trunks_without_registration_need_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_UNIT_TRUNK_PW", raising=False)
    EngineConfig.model_validate({"trunks": [{"name": "c", "addresses": ["198.51.100.7"]}]}).check_secrets()


def test_serve_refuses_to_start_without_the_password(tmp_path: Path) -> None:
    path = tmp_path / "ivr.yaml"
    path.write_text(yaml.safe_dump({"trunks": [TRUNK], "http": {"listen": "127.0.0.1:1"}}))
    env = {k: v for k, v in os.environ.items() if k != "IVR_UNIT_TRUNK_PW"}
    run = subprocess.run([str(IVR_BIN), "serve", "--config", str(path), "--state-dir", str(tmp_path / "v")],
                         capture_output=True, text=True, timeout=60, env=env, check=False)
    assert run.returncode == 1
    assert "trunk 'carrier': environment variable IVR_UNIT_TRUNK_PW" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "v" / "front").exists()  # nothing was started


def test_trunk_problem_is_positioned_in_the_file(tmp_path: Path) -> None:
    body = dedent("""
        trunks:
          - name: carrier
            registrar: "sip:198.51.100.1"
            username: "1000"
            password_env: TRUNK PW
        """)
    path = tmp_path / "ivr.yaml"
    path.write_text(body)
    with pytest.raises(ProblemsError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert "is not an environment variable name" in problem.message
    assert (problem.line, problem.col) == position(body, "password_env")


def test_tls_listen_needs_certificate_and_key() -> None:
    with pytest.raises(ValueError, match=r"needs sip\.tls"):
        EngineConfig.model_validate({"sip": {"listen": ["tls:127.0.0.1:5061"]}})
    c = EngineConfig.model_validate({"sip": {"listen": ["tls:127.0.0.1:5061"],
                                             "tls": {"certificate": "c.pem", "private_key": "k.pem"}}})
    assert c.sip.tls is not None and c.sip.tls.certificate.is_absolute()


def test_registering_trunk_needs_a_socket_and_an_address_for_the_carrier() -> None:
    with pytest.raises(ValueError, match=r"registers over tcp, but sip\.listen has no tcp: socket"):
        config(registrar="sip:198.51.100.1;transport=tcp")
    with pytest.raises(ValueError, match=r"sip\.listen is 0\.0\.0\.0, so set the trunk.s contact"):
        EngineConfig.model_validate({"sip": {"listen": ["udp:0.0.0.0:5060"]}, "trunks": [TRUNK]})
    EngineConfig.model_validate({"sip": {"listen": ["udp:0.0.0.0:5060"]},
                                 "trunks": [{**TRUNK, "contact": "203.0.113.5:5060"}]})
