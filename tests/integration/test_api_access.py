"""Access to a real `ivr serve`: API tokens and roles, the loopback rule, the private broker's ACL.

An agent's token changes only that agent and reads only the context of calls offered to it; the
private Mosquitto refuses anonymous clients and a worker cannot pose as the ACD to an agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import yaml
from scenarios import bye, call_setup, dtmf, pause, scenario
from server import IVR_BIN, REPO, Server, free_port, free_udp_tcp_port, start_server
from sipp_run import run_sipp

from ivr.access.tokens import new_token

ADMIN, READER, ALICE, BOB = new_token(), new_token(), new_token(), new_token()


def _bus(server: Server) -> tuple[str, str]:
    host, port = server.health()["bus"].split("://")[1].split(":")
    return host, port


def _mosquitto(tool: str, server: Server, user: str | None, *args: str) -> list[str]:
    host, port = _bus(server)
    creds = ["-u", user, "-P", server.bus_password(user)] if user else []
    return [tool, "-h", host, "-p", port, "-q", "1", *creds, *args]


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("IVR_TOKEN", "IVR_TOKENS")}
    return subprocess.run([str(IVR_BIN), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30, check=False, env={**clean, **(env or {})})


def test_roles_scopes_and_the_broker_acl_around_a_real_handoff(tmp_path: Path) -> None:
    agent_port = free_udp_tcp_port()
    server = start_server(
        tmp_path / "srv", max_calls=8, api_token=ADMIN,
        env={"IVR_TOKENS": f"admin={ADMIN},read={READER},agent:alice={ALICE},agent:bob={BOB}"},
        extra={"agents": {"alice": {"uri": f"sip:alice@127.0.0.1:{agent_port}",
                                     "queues": ["general"], "skills": {"banking": 5}},
                          "bob": {"queues": ["general"]}}})
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    agent = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", "1", "-nostdin",
         "-timeout", "40s", "-mi", "127.0.0.1", "-mp", str(free_udp_tcp_port())],
        cwd=agent_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs: list[subprocess.Popen[str] | subprocess.Popen[bytes]] = [agent]
    try:
        # the API: no token, a wrong one, another agent's, the right one
        assert not (server.root / "var" / "api-token").exists()  # tokens configured: none made
        status, doc = server.get("/agents", token=None)
        assert status == 401 and "bearer token" in doc["error"]
        assert server.get("/agents", token=new_token())[0] == 401
        assert server.request("POST", "/agents/alice/login", token=BOB)[0] == 403
        assert server.request("POST", "/agents/alice/login", token=READER)[0] == 403
        assert server.request("POST", "/agents/alice/login", token=ALICE)[0] == 200
        assert server.get("/agents", token=READER)[0] == 200
        assert server.get("/agents", token=ALICE)[0] == 403
        assert server.request("PUT", "/queues/general", {"strategy": "ring_all"}, token=READER)[0] == 403

        # /health: open, but the details (workers, pids, ports, bus) only for a read token
        status, brief = server.get("/health", token=None)
        assert status == 200 and set(brief) == {"status", "speech"} and brief["status"] == "ok"
        assert "workers" in server.get("/health", token=READER)[1]

        # the broker: anonymous refused; alice hears her offers; a worker cannot forge one
        anon = subprocess.run(_mosquitto("mosquitto_pub", server, None, "-t", "ivr/events/x",
                                         "-m", "{}"), capture_output=True, text=True, timeout=10)
        assert anon.returncode != 0 and "not authorised" in anon.stderr, anon
        offers = subprocess.Popen(
            _mosquitto("mosquitto_sub", server, "agent-alice", "-t", "ivr/agents/alice/offer",
                       "-C", "1", "-W", "40"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        spy = subprocess.Popen(
            _mosquitto("mosquitto_sub", server, "ivr-worker", "-t", "ivr/agents/#", "-W", "8"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs += [offers, spy]
        time.sleep(0.5)
        forged = subprocess.run(_mosquitto("mosquitto_pub", server, "ivr-worker", "-t",
                                           "ivr/agents/alice/offer", "-m", '{"forged": true}'),
                                capture_output=True, text=True, timeout=10)
        assert forged.returncode == 0  # MQTT 3.1.1 acknowledges and drops it

        path = tmp_path / "to_agent.xml"
        path.write_text(scenario("to_agent", call_setup(), pause(2500), dtmf("0"), pause(5000), bye()))
        r = run_sipp(server.uri_host, str(path), service="1000", timeout=40)
        assert r.successful == 1, r.output[-2000:] + server.log_tail()
        offer_out, _ = offers.communicate(timeout=30)
        spied, _ = spy.communicate(timeout=30)
        offer = json.loads(offer_out)
        assert "forged" not in offer and offer["flow"] == "acme-bank", offer
        assert spied == ""  # the worker user reads no agent's topics

        # the context of a call offered to alice: alice and admins, not bob, not a dashboard
        context = f"/calls/{offer['call_id']}/context"
        status, ctx = server.get(context, token=ALICE)
        assert status == 200 and ctx["flow"] == "acme-bank"
        assert server.get(context, token=ADMIN)[0] == 200
        assert server.get(context, token=BOB)[0] == 403
        assert server.get(context, token=READER)[0] == 403
        assert server.get(context, token=None)[0] == 401
        assert server.get("/calls/not-offered/context", token=ALICE)[0] == 403

        # the CLI: IVR_TOKEN, or nothing (no generated token when tokens are configured)
        url = f"http://127.0.0.1:{server.http_port}"
        ok = _cli("agents", "--json", "--server", url, cwd=tmp_path, env={"IVR_TOKEN": READER})
        assert ok.returncode == 0, ok.stderr
        assert {a["name"] for a in json.loads(ok.stdout)["agents"]} == {"alice", "bob"}
        refused = _cli("agents", "--server", url, cwd=tmp_path)
        assert refused.returncode == 1 and "401" in refused.stderr and "--token" in refused.stderr
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.stop()


def test_a_newcomer_on_loopback_needs_no_flags(tmp_path: Path) -> None:
    """No tokens configured: serve makes an admin token in var/api-token and the CLI uses it."""
    server = start_server(tmp_path / "srv")
    try:
        token_file = server.root / "var" / "api-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert server.get("/queues", token=None)[0] == 401
        r = _cli("queues", "--config", "ivr.yaml", cwd=server.root)  # state dir ./var
        assert r.returncode == 0 and "general" in r.stdout, r.stderr
        r = _cli("agent", "login", "alice", "--config", "ivr.yaml", cwd=server.root)
        assert r.returncode == 1 and "unknown agent alice" in r.stderr  # authorised, then 404
        r = _cli("queues", "--config", "ivr.yaml", "--token", new_token(), cwd=server.root)
        assert r.returncode == 1 and "401 invalid token" in r.stderr
    finally:
        server.stop()


def test_serve_refuses_an_api_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    defaults = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())
    config = {**defaults, "flows": str(REPO / "flows"), "audio": str(REPO / "audio"),
              "sip": {"listen": [f"udp:127.0.0.1:{free_udp_tcp_port()}"]},
              "store": {"path": str(tmp_path / "ivr.sqlite")},
              "http": {"listen": f"0.0.0.0:{free_port()}"}}
    (tmp_path / "ivr.yaml").write_text(yaml.safe_dump(config))
    r = _cli("serve", "--config", "ivr.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert "an API beyond loopback needs tokens" in r.stderr and "IVR_TOKENS" in r.stderr
    assert not (tmp_path / "var" / "api-token").exists()
    assert not (tmp_path / "var" / "mosquitto").exists()  # refused before anything started
