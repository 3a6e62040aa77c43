"""A site broker with a password and TLS (a real Mosquitto): the engine's clients get in, others not.

The broker's certificate is made here with openssl (a throwaway CA); the password comes from the
environment, as `bus.password_env` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from scenarios import bye, call_setup, pause, scenario
from server import free_port, start_server
from sipp_run import run_sipp

from ivr.bus.auth import BusAuth
from ivr.bus.outbox import Outbox, send_forever
from ivr.bus.users import BrokerUsers


@dataclass
class SiteBroker:
    port: int
    ca: Path
    password: str

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"


def _certificates(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=ivr-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext")


@pytest.fixture
def site_broker(tmp_path: Path) -> Iterator[SiteBroker]:
    home = tmp_path / "broker"
    home.mkdir()
    _certificates(home)
    users = BrokerUsers(home)
    users.write(["ivr"], "user ivr\ntopic readwrite ivr/#\n")
    port = free_port()
    (home / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nuser {pwd.getpwuid(os.getuid()).pw_name}\n"
        f"cafile {home / 'ca.pem'}\ncertfile {home / 'server.pem'}\nkeyfile {home / 'server.key'}\n"
        f"allow_anonymous false\npassword_file {users.password_file}\nacl_file {users.acl_file}\n"
        "log_dest stderr\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(home / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "mosquitto did not listen"
            time.sleep(0.05)
        yield SiteBroker(port, home / "ca.pem", users.secret_file("ivr").read_text().strip())
    finally:
        proc.terminate()
        proc.wait(10)


async def _refused(auth: BusAuth, url: str) -> str:
    with pytest.raises(aiomqtt.MqttError) as exc:
        async with auth.client(url, identifier="intruder", timeout=5):
            pass
    return str(exc.value)


async def test_the_engine_client_gets_in_with_user_password_and_tls(
        tmp_path: Path, site_broker: SiteBroker) -> None:
    ca = str(site_broker.ca)
    auth = BusAuth("ivr", site_broker.password, True, ca)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    sender = asyncio.get_running_loop().create_task(
        send_forever(outbox, site_broker.url, "sender", auth))
    try:
        async with auth.client(site_broker.url, identifier="reader", timeout=5) as reader:
            await reader.subscribe("ivr/events/#", qos=1)
            outbox.put("ivr/events/1", {"event": "call.start"}, key="k1")
            async with asyncio.timeout(10):
                message = await anext(aiter(reader.messages))
        assert str(message.topic) == "ivr/events/1"
        assert "Not authorized" in await _refused(BusAuth("ivr", "wrong", True, ca), site_broker.url)
        assert "Not authorized" in await _refused(BusAuth(None, None, True, ca), site_broker.url)
        # the right password, but in clear text, or to a broker whose CA we were not told
        await _refused(BusAuth("ivr", site_broker.password), f"mqtt://127.0.0.1:{site_broker.port}")
        assert "CERTIFICATE_VERIFY_FAILED" in await _refused(
            BusAuth("ivr", site_broker.password, True), site_broker.url)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        outbox.close()


def test_serve_and_its_workers_use_the_site_broker_credentials(
        tmp_path: Path, site_broker: SiteBroker) -> None:
    """A call's CDR reaches the store only over the bus: workers and supervisor both got in."""
    server = start_server(
        tmp_path / "srv", max_calls=4, env={"IVR_TEST_MQTT_PW": site_broker.password},
        extra={"bus": {"mqtt": site_broker.url, "username": "ivr", "password_env": "IVR_TEST_MQTT_PW",
                       "tls": {"ca_file": str(site_broker.ca)}}})
    try:
        assert server.health()["bus"] == site_broker.url
        assert not (server.root / "var" / "mosquitto").exists()  # no private broker
        path = tmp_path / "quick.xml"
        path.write_text(scenario("quick", call_setup(), pause(1500), bye()))
        r = run_sipp(server.uri_host, str(path), service="3000", timeout=30)
        assert r.successful == 1, r.output[-2000:] + server.log_tail()
        (cdr,) = server.wait_cdrs(1, timeout=20)
        assert cdr["flow"] == "quick"
    finally:
        server.stop()
