"""API tokens: entry parsing, roles and scopes, hashed storage, 0600 files, the loopback rule."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from ivr.access.bootstrap import GENERATED, client_token, is_loopback, server_tokens
from ivr.access.tokens import Principal, Role, TokenSet, parse_principal
from ivr.config import HttpSettings
from ivr.errors import ConfigError
from ivr.secret_file import read_private, write_private

ADMIN = "a" * 24
READER = "r" * 24
BOB = "b" * 24


def test_entries_give_each_token_its_role_and_agent() -> None:
    tokens = TokenSet.parse(f"admin={ADMIN}, read={READER}  # dashboards\n"
                            f"agent:bob={BOB}\n# a comment line\n", "$IVR_TOKENS")
    assert len(tokens) == 3
    assert tokens.verify(ADMIN) == Principal(Role.admin)
    assert tokens.verify(READER) == Principal(Role.read)
    assert tokens.verify(BOB) == Principal(Role.agent, "bob")
    assert tokens.verify("x" * 24) is None
    assert tokens.verify(ADMIN + "x") is None and tokens.verify("") is None


def test_a_hashed_entry_accepts_the_token_it_is_the_digest_of() -> None:
    hashed = hashlib.sha256(BOB.encode()).hexdigest()
    tokens = TokenSet.parse(f"agent:bob=sha256:{hashed}", "tokens")
    assert tokens.verify(BOB) == Principal(Role.agent, "bob")
    assert tokens.verify(f"sha256:{hashed}") is None  # the digest itself is no token


def test_only_digests_are_kept_in_memory() -> None:
    tokens = TokenSet.parse(f"admin={ADMIN}", "tokens")
    assert ADMIN.encode() not in repr(vars(tokens)).encode()
    assert hashlib.sha256(ADMIN.encode()).digest() in [d for d, _ in tokens._entries]


@pytest.mark.parametrize(("text", "message"), [
    (f"root={ADMIN}", "tokens:1: unknown role 'root'; one of admin, read, agent:<name>"),
    (f"agent={BOB}", "tokens:1: 'agent': an agent token names its agent, e.g. agent:bob"),
    (f"agent:b/ob={BOB}", "an agent token names its agent"),
    (f"admin:x={ADMIN}", "unknown role 'admin:x'"),
    ("admin=short-secret", "tokens:1: the admin token is shorter than 16 characters"),
    (f"\n{ADMIN}", "tokens:2: expected role=token"),
    ("admin=", "tokens:1: expected role=token"),
    (f"admin={ADMIN}\nread={ADMIN}", "one token is given two roles (admin, read)"),
])
def test_bad_entries_are_refused_without_echoing_the_secret(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        TokenSet.parse(text, "tokens")
    assert message in str(exc.value)
    assert ADMIN not in str(exc.value) and BOB not in str(exc.value)
    assert "short-secret" not in str(exc.value)


def test_principals_and_what_they_may_read() -> None:
    assert parse_principal("agent:alice") == Principal(Role.agent, "alice")
    assert parse_principal("read").can_read and parse_principal("admin").can_read
    assert not parse_principal("agent:alice").can_read
    assert str(parse_principal("agent:alice")) == "agent:alice"


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"admin={ADMIN}\n")
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0640\); run: chmod 600"):
        read_private(path, "http.tokens_file")
    path.chmod(0o600)
    assert read_private(path, "http.tokens_file") == f"admin={ADMIN}\n"
    with pytest.raises(ConfigError, match=r"http.tokens_file .*missing: No such file"):
        read_private(tmp_path / "missing", "http.tokens_file")


def test_secret_files_are_written_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret"
    write_private(path, "s3cret\n")
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == "s3cret\n"
    write_private(path, "again\n")
    assert path.read_text() == "again\n" and os.listdir(path.parent) == ["secret"]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.5", False), ("example.com", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_no_tokens_on_loopback_generates_one_admin_token_kept_across_restarts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_TOKENS", raising=False)
    tokens = server_tokens(HttpSettings(), tmp_path)
    token_file = tmp_path / GENERATED
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600 and len(token) >= 32
    assert tokens.principals == [Principal(Role.admin)] and tokens.verify(token) is not None
    again = server_tokens(HttpSettings(), tmp_path)
    assert again.verify(token) is not None and token_file.read_text().strip() == token
    assert client_token(None, tmp_path) == token  # what `ivr queues` sends with no flags
    assert client_token("given", tmp_path) == "given"
    assert client_token(None, tmp_path / "elsewhere") is None


def test_beyond_loopback_without_tokens_is_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_TOKENS", raising=False)
    with pytest.raises(ConfigError, match=r"http.listen is 0.0.0.0:8080: an API beyond loopback "
                                          r"needs tokens\. Set IVR_TOKENS"):
        server_tokens(HttpSettings(listen="0.0.0.0:8080"), tmp_path)
    assert not (tmp_path / GENERATED).exists()


def test_configured_tokens_replace_the_generated_one(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_TOKENS", raising=False)
    server_tokens(HttpSettings(), tmp_path)
    monkeypatch.setenv("API_KEYS", f"read={READER}")
    file = tmp_path / "tokens"
    write_private(file, f"admin={ADMIN}\n")
    tokens = server_tokens(HttpSettings(listen="0.0.0.0:8080", tokens_env="API_KEYS",
                                        tokens_file=file), tmp_path)
    assert {str(p) for p in tokens.principals} == {"read", "admin"}
    assert not (tmp_path / GENERATED).exists()
    file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        server_tokens(HttpSettings(tokens_file=file), tmp_path)
    write_private(file, "# nothing yet\n")
    with pytest.raises(ConfigError, match="holds no token"):
        server_tokens(HttpSettings(tokens_file=file), tmp_path)


def test_ivr_token_prints_a_token_and_its_hashed_entry(run_cli: Callable[..., Any]) -> None:
    r = run_cli("token", "agent:bob")
    assert r.code == 0
    token = r.stdout.strip()
    entry = r.stderr.strip().splitlines()[-1]
    assert entry == f"agent:bob=sha256:{hashlib.sha256(token.encode()).hexdigest()}"
    assert TokenSet.parse(entry, "f").verify(token) == Principal(Role.agent, "bob")
    bad = run_cli("token", "root")
    assert bad.code == 2 and "unknown role 'root'" in bad.stderr


def test_api_commands_send_the_generated_token_and_say_what_to_do_on_401(
        run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_TOKEN", raising=False)
    seen: list[str | None] = []

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": "invalid token"}')

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        r = run_cli("queues", "--server", url, "--state-dir", str(tmp_path / "none"))
        assert r.code == 1 and "401 invalid token; no token found: give --token" in r.stderr
        write_private(tmp_path / "var" / GENERATED, "generated-token\n")
        r = run_cli("agents", "--server", url)  # ./var/api-token
        assert r.code == 1 and "give --token or IVR_TOKEN" in r.stderr
        monkeypatch.setenv("IVR_TOKEN", "env-token")
        assert run_cli("agents", "--server", url).code == 1
        assert run_cli("agent", "ready", "bob", "--server", url, "--token", "flag-token").code == 1
    finally:
        httpd.shutdown()
        thread.join(5)
    assert seen == [None, "Bearer generated-token", "Bearer env-token", "Bearer flag-token"]
