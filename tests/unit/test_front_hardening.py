"""The front's hardening without a network: the agents' HA1 file, what reaches kamailio.cfg and
the tables, the transfer allow-list, and `ivr agents secret`."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CliResult
from pydantic import ValidationError

from ivr.config import EngineConfig
from ivr.errors import ConfigError
from ivr.front.agent_secrets import SecretsFile, agent_ha1s, ha1
from ivr.front.render import agentauth_table_text, render_config, write_agent_auth
from ivr.front.settings import FrontSettings
from ivr.front.tools import find_tool
from ivr.transfers import TransferPolicy, union_regex

BOB_HA1 = hashlib.md5(b"bob:ivr:pw").hexdigest()


def test_ha1_is_md5_of_user_realm_password() -> None:
    assert ha1("bob", "ivr", "pw") == BOB_HA1


def test_secrets_file_is_written_0600_and_read_back_per_realm(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "agent-secrets"
    f = SecretsFile.load(path)  # missing: empty
    assert f.entries == {}
    f.set("bob", "ivr", "pw")
    f.set("alice", "other", "x")
    f.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "pw" not in path.read_text()
    again = SecretsFile.load(path)
    assert again.ha1s("ivr") == {"bob": BOB_HA1}
    assert again.remove("bob") and not again.remove("bob")


def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent-secrets"
    path.write_text(f"bob:ivr:{BOB_HA1}\n")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        SecretsFile.load(path)


def test_a_broken_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "agent-secrets"
    path.write_text(f"# comment\nbob:ivr:{BOB_HA1}\nalice:ivr:not-a-hash\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match=r"agent-secrets:3: not 'user:realm:ha1'"):
        SecretsFile.load(path)


def test_bad_names_and_empty_secrets_are_refused(tmp_path: Path) -> None:
    f = SecretsFile(tmp_path / "s")
    with pytest.raises(ConfigError):
        f.set("bob:evil", "ivr", "pw")
    with pytest.raises(ConfigError):
        f.set("bob", "ivr", "")


def test_agent_ha1s_take_the_environment_first_then_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent-secrets"
    f = SecretsFile(path)
    f.set("bob", "ivr", "pw")
    f.set("stranger", "ivr", "pw")  # not a configured agent: ignored
    f.save()
    alice_ha1 = ha1("alice", "ivr", "a")
    config = EngineConfig.model_validate({
        "front": {"agent_secrets": str(path)},
        "agents": {"bob": {}, "alice": {"secret_env": "ALICE_HA1"}, "carol": {}},
    })
    assert agent_ha1s(config, {"ALICE_HA1": alice_ha1}) == {"bob": BOB_HA1, "alice": alice_ha1}
    with pytest.raises(ConfigError, match="ALICE_HA1 is not an HA1"):
        agent_ha1s(config, {"ALICE_HA1": "password"})


def test_registrar_renders_challenge_ban_and_binding(tmp_path: Path) -> None:
    s = FrontSettings(runtime_dir=tmp_path, agent_ha1={"bob": BOB_HA1}, auth_realm="acme",
                      auth_max_failures=7, auth_window_s=30, auth_ban_s=120, max_message_bytes=9000)
    cfg = render_config(s)
    assert BOB_HA1 not in cfg  # the HA1s go only to the 0600 table
    assert 'www_challenge("acme", "1")' in cfg
    assert 'pv_www_authenticate("acme", "$sht(agentha1=>$au)", "1")' in cfg
    assert "if ($au != $tU) {" in cfg  # bound to the agent it authenticated
    assert "authfail=>size=10;autoexpire=30;" in cfg and "authban=>size=10;autoexpire=120;" in cfg
    assert "if ($var(fails) >= 7) {" in cfg
    assert 'if ($ml > 9000) {' in cfg and 'sl_send_reply("513", "Message Too Large")' in cfg
    register = cfg[cfg.index("route[REGISTRAR]"):cfg.index("route[AUTH_FAILED]")]
    assert register.index("pv_www_authenticate") < register.index('save("location")')

    table = agentauth_table_text(s)
    assert f":bob:0:0:{BOB_HA1}:0" in table
    directory = write_agent_auth(s)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "agentha1").stat().st_mode) == 0o600

    open_registrar = render_config(FrontSettings(runtime_dir=tmp_path, registrar=False))
    assert "auth.so" not in open_registrar and "405" in open_registrar


def test_settings_refuse_a_bad_ha1_or_realm(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FrontSettings(runtime_dir=tmp_path, agent_ha1={"bob": "secret"})
    with pytest.raises(ValueError):
        FrontSettings(runtime_dir=tmp_path, auth_realm='ivr"; exit')
    with pytest.raises(ValueError):
        FrontSettings(runtime_dir=tmp_path, refer_allow=['sip:*"@x'])


def test_refer_check_renders_the_allow_list_and_agents(tmp_path: Path) -> None:
    config = EngineConfig.model_validate({
        "transfers": {"allow": ["sip:+1800*@carrier.example"]},
        "agents": {"alice": {"uri": "sip:alice@10.0.0.5:5060;transport=tcp"}},
    })
    s = FrontSettings.from_config(config, tmp_path)
    cfg = render_config(s)
    assert f'$rt =~ "{s.refer_regex}"' in cfg
    assert 'sl_send_reply("403", "Transfer Target Not Allowed")' in cfg
    assert "\\" not in s.refer_regex  # no escaping games inside a kamailio string
    nothing = render_config(FrontSettings(runtime_dir=tmp_path))
    refer = nothing[nothing.index("route[REFER_CHECK]"):nothing.index("route[REGISTRAR]")]
    assert "=~" not in refer and "403" in refer  # an empty allow-list refuses every REFER


def test_rendered_config_with_auth_passes_kamailio_check(tmp_path: Path) -> None:
    s = FrontSettings(runtime_dir=tmp_path, agent_ha1={"bob": BOB_HA1},
                      refer_allow=["sip:*@127.0.0.1:*"], listen=["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"])
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render_config(s))
    (tmp_path / "dispatcher.list").write_text("")
    write_agent_auth(s)
    run = subprocess.run([find_tool("kamailio"), "-c", "-f", str(cfg), "-Y", str(tmp_path)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(("target", "allowed"), [
    ("sip:+18005550100@carrier.example", True),
    ("<sip:+18005550100@carrier.example;user=phone>", True),
    ("Desk <SIP:+18005550100@Carrier.Example>", True),
    ("sip:+19005550100@carrier.example", False),
    ("sip:+1800@carrier.example.evil.net", False),
    ("sip:+1800x@carrier.example@evil.net", False),
    ("sip:alice@10.0.0.5:5060", True),
    ("sip:alice@10.0.0.5:5060\n", False),
])
def test_transfer_policy(target: str, allowed: bool) -> None:
    policy = TransferPolicy(("sip:+1800*@carrier.example",), frozenset({"sip:alice@10.0.0.5:5060"}))
    assert policy.allows(target) is allowed
    assert (policy.refusal(target) is None) is allowed


def test_transfer_patterns_are_validated_by_the_config() -> None:
    with pytest.raises(ValidationError, match="not a URI glob"):
        EngineConfig.model_validate({"transfers": {"allow": ['sip:*"; exit;']}})
    assert union_regex([]) == ""
    assert not TransferPolicy(()).allows("sip:desk@127.0.0.1")


def test_cli_agents_secret_writes_only_the_ha1(tmp_path: Path,
                                               run_cli: Callable[..., CliResult]) -> None:
    secrets_file = tmp_path / "agent-secrets"
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text(f"agents: {{bob: {{queues: []}}}}\nfront: {{agent_secrets: {secrets_file}}}\n")
    result = run_cli("agents", "secret", "bob", "--config", cfg, input="s3cret!\n")
    assert result.code == 0, result.stderr
    assert secrets_file.read_text() == f"bob:ivr:{ha1('bob', 'ivr', 's3cret!')}\n"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    unknown = run_cli("agents", "secret", "mallory", "--config", cfg, input="x\n")
    assert unknown.code == 2 and "no agent 'mallory'" in unknown.stderr
    removed = run_cli("agents", "secret", "bob", "--remove", "--config", cfg)
    assert removed.code == 0 and secrets_file.read_text() == ""
