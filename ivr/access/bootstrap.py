"""Where the server's and the CLI's tokens come from.

Server: entries from `http.tokens_env` (default `IVR_TOKENS`) and `http.tokens_file` (0600).
With none configured, an API on loopback gets one admin token, generated into
`<state dir>/api-token` (0600, kept across restarts), which the CLI on the same machine reads; an
API listening beyond loopback without configured tokens is refused. Loopback is not left open
without a token: any local user or process, or a web page in a local browser, can reach it.

CLI: `--token`, else `IVR_TOKEN`, else the state dir's `api-token`.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from ivr.access.tokens import Principal, Role, TokenSet, new_token
from ivr.config import HttpSettings
from ivr.errors import ConfigError
from ivr.secret_file import read_private, write_private

GENERATED = "api-token"


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configured_tokens(http: HttpSettings) -> TokenSet:
    tokens = TokenSet()
    env = os.environ.get(http.tokens_env, "")
    if env.strip():
        tokens += TokenSet.parse(env, f"${http.tokens_env}")
    if http.tokens_file is not None:
        text = read_private(http.tokens_file, "http.tokens_file")
        from_file = TokenSet.parse(text, str(http.tokens_file))
        if not len(from_file):
            raise ConfigError(f"http.tokens_file {http.tokens_file} holds no token")
        tokens += from_file
    return tokens


def server_tokens(http: HttpSettings, state_dir: Path) -> TokenSet:
    """The tokens `ivr serve` accepts; a ConfigError to stop it before anything starts."""
    tokens = configured_tokens(http)
    generated = state_dir / GENERATED
    if len(tokens):
        generated.unlink(missing_ok=True)  # a stale admin token would only confuse the CLI
        return tokens
    host = http.listen.rpartition(":")[0]
    if not is_loopback(host):
        raise ConfigError(
            f"http.listen is {http.listen}: an API beyond loopback needs tokens. Set "
            f"{http.tokens_env}=admin=<token> (make one with `ivr token admin`) or http.tokens_file, "
            "or listen on 127.0.0.1")
    if generated.exists():
        token = read_private(generated, "the generated API token").strip()
    else:
        token = new_token()
        write_private(generated, token + "\n")
    return TokenSet.single(token, Principal(Role.admin))


def client_token(given: str | None, state_dir: Path) -> str | None:
    """What the CLI sends: `--token`/`IVR_TOKEN` (`given`), else the server's generated token."""
    if given:
        return given.strip()
    generated = state_dir / GENERATED
    if generated.exists():
        return read_private(generated, "the generated API token").strip()
    return None
