"""Bus access without a broker: the generated ACL, site-broker settings, the ACD's reply_to guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ivr.acd.acl import SUPERVISOR, WORKER, acl_text, broker_users, bus_agents
from ivr.acd.service import AcdService
from ivr.bus.auth import BusAuth, broker_address
from ivr.bus.users import BrokerUsers
from ivr.config import BusSettings, EngineConfig
from ivr.errors import ConfigError
from ivr.secret_file import write_private


def _blocks(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        lines = [ln for ln in block.splitlines() if not ln.startswith("#")]
        if lines and lines[0].startswith("user "):
            out[lines[0][5:]] = lines[1:]
    return out


def test_each_user_sees_only_its_topics() -> None:
    acl = _blocks(acl_text(["alice", "bob"]))
    assert acl[SUPERVISOR] == ["topic readwrite ivr/#"]
    assert acl[WORKER] == ["topic write ivr/acd/request", "topic write ivr/events/#",
                           "topic read ivr/acd/reply/#", "topic read ivr/acd/callbacks",
                           "topic read $share/ivr-workers/ivr/acd/callbacks"]
    assert acl["agent-alice"] == ["topic read ivr/agents/alice/offer",
                                  "topic read ivr/agents/alice/cancel",
                                  "topic read ivr/agents/alice/status",
                                  "topic write ivr/agents/alice/state"]
    assert not any("bob" in line for line in acl["agent-alice"])
    assert "pattern" not in acl_text(["alice"])  # no rule applies to every user


def test_agents_whose_name_is_not_one_topic_level_get_no_user() -> None:
    assert bus_agents(["bob", "a/b", "c+", "d#", "e f", "alice"]) == ["alice", "bob"]


def test_broker_passwords_are_generated_once_and_kept_0600(tmp_path: Path) -> None:
    users = BrokerUsers(tmp_path)
    users.write(*broker_users(["alice"]))
    first = {u: users.secret_file(u).read_text() for u in (SUPERVISOR, WORKER, "agent-alice")}
    assert all(len(pw.strip()) >= 32 for pw in first.values())
    assert len(set(first.values())) == 3
    for path in (users.password_file, users.acl_file, *(users.secret_file(u) for u in first)):
        assert path.stat().st_mode & 0o777 == 0o600, path
    hashed = users.password_file.read_text()
    assert "agent-alice:$7$" in hashed and first[WORKER].strip() not in hashed
    users.write(*broker_users(["alice", "bob"]))
    assert {u: users.secret_file(u).read_text() for u in first} == first
    assert users.auth(WORKER) == BusAuth(WORKER, first[WORKER].strip())
    assert first[WORKER].strip() not in repr(users.auth(WORKER))


def test_site_broker_password_from_the_environment_or_a_private_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQ_PW", "pw-from-env")
    auth = BusAuth.from_settings(BusSettings(mqtt="mqtt://b:1883", username="ivr",
                                             password_env="MQ_PW"))
    assert (auth.username, auth.password, auth.tls) == ("ivr", "pw-from-env", False)
    monkeypatch.delenv("MQ_PW")
    with pytest.raises(ConfigError, match="environment variable MQ_PW"):
        BusAuth.from_settings(BusSettings(mqtt="mqtt://b", username="ivr", password_env="MQ_PW"))
    secret = tmp_path / "mqtt.secret"
    write_private(secret, "pw-from-file\n")
    settings = BusSettings(mqtt="mqtts://b", username="ivr", password_file=secret,
                           tls={"ca_file": tmp_path / "ca.pem"})
    auth = BusAuth.from_settings(settings)
    assert (auth.password, auth.tls, auth.ca_file) == ("pw-from-file", True, str(tmp_path / "ca.pem"))
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        BusAuth.from_settings(settings)


def test_tls_follows_the_scheme_unless_configured() -> None:
    assert BusAuth.from_settings(BusSettings(mqtt="mqtts://b")).tls
    assert not BusAuth.from_settings(BusSettings(mqtt="mqtt://b")).tls
    assert BusAuth.from_settings(BusSettings(mqtt="mqtt://b", tls={"enabled": True})).tls
    assert broker_address("mqtts://b") == ("b", 8883)
    assert broker_address("mqtt://b") == ("b", 1883)
    assert broker_address("mqtt://127.0.0.1:1999") == ("127.0.0.1", 1999)


async def test_a_client_gets_the_user_password_and_tls() -> None:
    client = BusAuth("ivr", "pw", True).client("mqtts://127.0.0.1", identifier="t")
    assert client._hostname == "127.0.0.1" and client._port == 8883
    assert client._tls_params is not None and client._tls_params.ca_certs is None  # system CAs
    assert (client._client._username, client._client._password) == (b"ivr", b"pw")
    plain = BusAuth().client("mqtt://127.0.0.1:1999", identifier="t")
    assert plain._tls_params is None and plain._client._username is None


@pytest.mark.parametrize(("bus", "message"), [
    ({"username": "ivr"}, "apply to a site broker"),
    ({"mqtt": "mqtt://b", "password_env": "X"}, "a password needs a username"),
    ({"mqtt": "mqtt://b", "username": "u", "password_env": "X", "password_file": "/f"},
     "not both"),
    ({"mqtt": "mqtt://b", "username": "u", "password": "inline"}, "Extra inputs are not permitted"),
    ({"mqtt": "mqtt://b", "tls": {"cert_file": "/c.pem"}}, "cert_file and key_file go together"),
    ({"mqtt": "mqtt://b", "username": "u", "password_env": "not a name"}, "not an environment"),
])
def test_bad_bus_settings(bus: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EngineConfig.model_validate({"bus": bus})


def test_the_acd_refuses_a_reply_to_outside_the_reply_topics(tmp_path: Path) -> None:
    config = EngineConfig.model_validate({"queues": {"general": {}},
                                          "agents": {"alice": {"queues": ["general"]}}})
    svc = AcdService.create(config, tmp_path / "ivr.sqlite", tmp_path / "outbox.sqlite", "mqtt://x")
    try:
        svc.agent_action("alice", "login")
        sent = svc.outbox.count()
        forged = {"op": "enqueue", "call_id": "c1", "queue": "general", "key": "k1",
                  "reply_to": "ivr/agents/alice/offer"}
        svc.on_message("ivr/acd/request", json.dumps(forged).encode())
        assert "c1" not in svc.engine.waiting and svc.outbox.count() == sent
        svc.on_message("ivr/acd/request", json.dumps(
            {**forged, "key": "k2", "reply_to": "ivr/acd/reply/w1"}).encode())
        assert svc.offered_to("c1", "alice") and not svc.offered_to("c1", "bob")
    finally:
        svc.close()
