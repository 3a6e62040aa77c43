"""The `ivr` command. Exit codes: 0 ok, 1 a failed check, 2 bad usage (see shared/CLI.md)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import faulthandler
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ivr import log
from ivr.config import EngineConfig, load_config
from ivr.errors import IvrError, Problem, ProblemsError
from ivr.flow.channel import Prompt
from ivr.flow.loader import iter_yaml_files
from ivr.flow.scripted import Step
from ivr.flow.validate import FlowSet, load_flows

F = TypeVar("F", bound=Callable[..., Any])


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))


def _print_problems(problems: list[Problem], warnings: list[Problem] | None = None) -> None:
    for p in problems:
        click.echo(str(p), err=True)
    for w in warnings or []:
        click.echo(f"{w.file}:{w.line}:{w.col}: warning: {w.message}", err=True)


def config_option(fn: F) -> F:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        help="engine config (default ./ivr.yaml when present, else built-in defaults)",
    )(fn)


def _config(path: Path | None) -> EngineConfig:
    if path is not None and not path.is_file():
        raise click.BadParameter(f"{path} does not exist", param_hint="--config")
    return load_config(path)


def _flow_files(paths: tuple[Path, ...], config: EngineConfig) -> list[Path]:
    roots = list(paths) or [Path(config.flows)]
    for p in roots:
        if not p.exists():
            raise click.BadParameter(f"{p} does not exist", param_hint="PATH")
    return list(iter_yaml_files(roots, tests=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """ivr: an offline, SIP-native IVR engine with flows tested like code."""
    log.setup(log_level.upper())


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@config_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def validate(paths: tuple[Path, ...], config_path: Path | None, as_json: bool) -> None:
    """Check flow files: schema, targets, reachability, audio, queues, calendars, templates."""
    config = _config(config_path)
    files = _flow_files(paths, config)
    result = load_flows(files, config)
    test_files = list(iter_yaml_files(list(paths) or [Path(config.flows)], tests=True))
    from ivr.flow.testing import load_test_file

    for tf in test_files:
        try:
            test = load_test_file(tf)
        except ProblemsError as exc:
            result.errors += exc.problems
            continue
        if test.flow not in result.flows and not any(p.file.endswith(tf.name) for p in result.errors):
            result.errors.append(Problem(str(tf), 1, 1, f"test file names unknown flow {test.flow!r}"))
    ok = not result.errors
    if as_json:
        _emit_json({"ok": ok, "problems": [p.as_json() for p in result.errors],
                    "warnings": [p.as_json() for p in result.warnings],
                    "flows": sorted(result.flows)})
    else:
        _print_problems(result.errors, result.warnings)
        n = len(files)
        click.echo(f"{'ok' if ok else 'FAILED'}: {n} flow file{'s' * (n != 1)}, "
                   f"{len(test_files)} test file{'s' * (len(test_files) != 1)}, "
                   f"{len(result.errors)} problem{'s' * (len(result.errors) != 1)}", err=not ok)
    sys.exit(0 if ok else 1)


def _load_for(flow_path: Path, config: EngineConfig) -> tuple[FlowSet, str]:
    """Load the flow file and its siblings (subflows), returning the set and the flow's id."""
    if not flow_path.is_file():
        raise click.BadParameter(f"{flow_path} is not a file", param_hint="FLOW")
    siblings = list(iter_yaml_files([flow_path.parent], tests=False))
    flowset = load_flows(siblings if flow_path in siblings else [flow_path, *siblings], config)
    own = [p for p in flowset.errors if Path(p.file) == flow_path]
    if own:
        raise ProblemsError(own)
    for flow in flowset.flows.values():
        if Path(flow.file).resolve() == flow_path.resolve():
            return flowset, flow.id
    raise ProblemsError(flowset.errors or [Problem(str(flow_path), 1, 1, "flow did not load")])


def parse_input(text: str) -> Step:
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    if kind in ("silence", "hangup") and not value:
        return Step(kind)  # type: ignore[arg-type]
    if sep and kind == "dtmf" and value and all(c in "0123456789*#ABCD" for c in value):
        return Step("dtmf", value)
    if sep and kind == "speech" and value.strip():
        return Step("say", value.strip())
    if sep and kind == "audio" and value:
        if not Path(value).is_file():
            raise click.BadParameter(f"audio file {value} does not exist", param_hint="--input")
        return Step("audio", value)
    raise click.BadParameter(
        f"{text!r}: use dtmf:DIGITS, speech:TEXT, audio:FILE.wav, silence or hangup",
        param_hint="--input",
    )


def _interactive_reader() -> Step | None:
    click.echo("  (keys like 12#, words to speak, empty line for silence, 'hangup' to end)",
               err=True)
    try:
        line = input("caller> ").strip()
    except EOFError:
        return Step("hangup")
    if not line:
        return Step("silence")
    if line.lower() in ("hangup", "quit", "exit", "bye"):
        return Step("hangup")
    if ":" in line:
        try:
            return parse_input(line)
        except click.BadParameter as exc:
            click.echo(str(exc), err=True)
            return _interactive_reader()
    if all(c in "0123456789*#" for c in line):
        return Step("dtmf", line)
    return Step("say", line)


@cli.command()
@click.argument("flow", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="dtmf:12#|speech:TEXT|audio:F|silence",
              help="caller input, in order")
@click.option("--caller", "caller_number", default="+15550000000", show_default=True)
@click.option("--clock", help="ISO 8601 time with offset, fixes `hours`")
@config_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def simulate(flow: Path, inputs: tuple[str, ...], caller_number: str, clock: str | None,
             config_path: Path | None, as_json: bool) -> None:
    """Run a flow over a text channel (interactive with no --input on a terminal)."""
    from ivr.flow.context import CallContext
    from ivr.flow.interpreter import Interpreter
    from ivr.flow.scripted import ScriptedChannel

    steps = [parse_input(i) for i in inputs]
    fixed: dt.datetime | None = None
    if clock:
        try:
            fixed = dt.datetime.fromisoformat(clock)
        except ValueError:
            raise click.BadParameter(f"{clock!r} is not ISO 8601", param_hint="--clock") from None
        if fixed.tzinfo is None:
            raise click.BadParameter("give a UTC offset, e.g. 2026-03-02T10:00:00-05:00",
                                     param_hint="--clock")
    config = _config(config_path)
    flowset, flow_id = _load_for(flow, config)
    interactive = not inputs and sys.stdin.isatty() and not as_json

    def show(prompt: Prompt) -> None:
        if not as_json:
            click.echo(f"ivr: {prompt.describe()}")

    from ivr.flow.audio_input import file_recognizer

    channel = ScriptedChannel(steps=steps, on_prompt=show, recognizer=file_recognizer(config),
                              read_step=_interactive_reader if interactive else None)
    ctx = CallContext(channel=channel, config=config, flows=flowset.flows,
                      flow=flowset.flows[flow_id],
                      clock=(lambda: fixed) if fixed else (lambda: dt.datetime.now(dt.timezone.utc)),
                      caller={"number": caller_number})
    result = asyncio.run(Interpreter(ctx).run())
    if as_json:
        _emit_json(result.as_json())
    else:
        end = result.end
        click.echo(f"-- path: {' > '.join(ctx.path)}")
        click.echo(f"-- variables: {json.dumps(ctx.masked_variables(), default=str)}")
        click.echo(f"-- end: {end.kind} at {end.node}"
                   + (f" ({end.message})" if end.message else "")
                   + (f" queue={end.queue} context={json.dumps(end.context)}" if end.queue else "")
                   + (f" target={end.target}" if end.target else ""))
    sys.exit(1 if result.end.kind == "error" else 0)


# -- a running server's HTTP API (ivr test --sip URI, ivr queues, ivr agents) ------------------
def _server_option(fn: F) -> F:
    fn = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                      default=Path("var"), show_default=True,
                      help="the server's state dir: its generated api-token is used when no "
                      "token is given")(fn)
    fn = click.option("--token", envvar="IVR_TOKEN", default=None,
                      help="API bearer token (env IVR_TOKEN)")(fn)
    return click.option("--server", default=None,
                        help="the running server's HTTP API (default: http.listen of the config)")(fn)


def _api(server: str | None, config_path: Path | None, token: str | None,
         state_dir: Path) -> tuple[str, str | None]:
    """The server's URL and the token to send (README: Privacy and access)."""
    from ivr.access.bootstrap import client_token
    from ivr.acd.remote import default_server

    return server or default_server(_config(config_path)), client_token(token, state_dir)


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@config_option
@click.option("--sip", "sip", is_flag=False, flag_value="local", default=None, metavar="[URI]",
              help="run every case as a real SIP call: against a test server started on free "
              "ports (no URI), or the server at URI (it needs test_hooks: true)")
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 32),
              help="--sip: calls at a time")
@click.option("--voice", "caller_voice", default="flite:rms", show_default=True,
              metavar="ENGINE[:VOICE]", help="--sip: the caller's voice for `say` steps")
@click.option("--server-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--sip without URI: keep the test server's config, state and log here "
              "(default: a temporary directory, removed after)")
@_server_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def test_cmd(paths: tuple[Path, ...], config_path: Path | None, sip: str | None, parallel: int,
             caller_voice: str, server_dir: Path | None, server: str | None, token: str | None,
             state_dir: Path, as_json: bool) -> None:
    """Run every *.test.yaml case (offline, or over SIP) and report node coverage per flow."""
    from ivr.flow.testing import run_tests

    if sip is not None and not sip.startswith("sip:") and sip != "local":
        paths, sip = (Path(sip), *paths), "local"  # `--sip flows/`: the value is a PATH
    # back-end failures are expected in test cases; only real trouble should reach stderr
    logging.getLogger("ivr.flow").setLevel(logging.ERROR)
    config = _config(config_path)
    files = _flow_files(paths, config)
    # a file given by name (a test, or a flow with subflows) needs the flows beside it
    beside = [f for p in paths if p.is_file() for f in iter_yaml_files([p.parent], tests=False)]
    flowset = load_flows(sorted(set(files) | set(beside)), config)
    roots = list(paths) or [Path(config.flows)]
    test_files = list(iter_yaml_files(roots, tests=True))
    if sip is None:
        from ivr.flow.audio_input import file_recognizer

        report = asyncio.run(run_tests(test_files, flowset.flows, config,
                                       recognizer=file_recognizer(config)))
    else:
        from ivr.siptest.runner import Target

        target = Target(host="", parallel=parallel, voice=caller_voice, config=config_path,
                        flows_dir=_flows_dir(roots))
        report = _sip_tests(sip, target, config, config_path, flowset, test_files,
                            _api(server, config_path, token, state_dir) if sip != "local" else None,
                            server_dir)
    report.problems = flowset.errors + report.problems
    if not test_files:
        report.problems.append(Problem(str(roots[0]), 1, 1, "no *.test.yaml files found"))
    _print_report(report, as_json)
    sys.exit(0 if report.passed else 1)


def _flows_dir(roots: list[Path]) -> Path:
    """The one directory of flows a --sip run serves (and whose prompts the caller expects)."""
    dirs = {(p if p.is_dir() else p.parent).resolve() for p in roots}
    if len(dirs) != 1:
        raise click.BadParameter("--sip serves one flows directory; give PATHs in one directory",
                                 param_hint="PATH")
    return dirs.pop()


def _sip_tests(sip: str, target: Any, config: EngineConfig, config_path: Path | None,
               flowset: FlowSet, test_files: list[Path], api: tuple[str, str | None] | None,
               server_dir: Path | None) -> Any:
    """The cases over SIP: against URI, or a test server started for the run."""
    import dataclasses

    from ivr.siptest.local import local_server
    from ivr.siptest.runner import SipRunner

    if flowset.errors:
        from ivr.flow.testing import Report

        return Report()  # the flows do not load: nothing to serve
    if sip != "local":
        host = sip.removeprefix("sip:").rpartition("@")[2].split(";")[0]
        assert api is not None
        target = dataclasses.replace(target, host=host, uri=sip, api=api[0], token=api[1])
        return asyncio.run(SipRunner(target, config, flowset.flows).run(test_files))
    with local_server(config_path, target.flows_dir, max_calls=max(8, 2 * target.parallel),
                      keep=server_dir) as srv:
        target = dataclasses.replace(target, host=srv.sip, api=srv.api, token=srv.token(),
                                     calls_dir=server_dir / "calls" if server_dir else None)
        return asyncio.run(SipRunner(target, config, flowset.flows).run(test_files))


def _print_report(report: Any, as_json: bool) -> None:
    """`ivr test`'s output, offline and over SIP alike."""
    if as_json:
        _emit_json(report.as_json())
        return
    _print_problems(report.problems)
    for c in report.cases:
        mark = "PASS" if c.passed else "FAIL"
        click.echo(f"{mark} {c.flow}: {c.name}" + ("" if c.passed else f"\n     {c.message}"))
    for fid, cov in report.coverage.items():
        pct = 100 * cov["reached"] / max(cov["nodes"], 1)
        click.echo(f"coverage {fid}: {cov['reached']}/{cov['nodes']} nodes ({pct:.0f}%)"
                   + (f"; never reached: {', '.join(cov['unreached'])}" if cov["unreached"]
                      else ""))
    failed = sum(not c.passed for c in report.cases)
    click.echo(f"{len(report.cases) - failed} passed, {failed} failed")


@cli.command()
@click.argument("flow", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True)
@config_option
def graph(flow: Path, fmt: str, config_path: Path | None) -> None:
    """Draw the flow as a graph (Mermaid or Graphviz dot)."""
    from ivr.flow import graph as drawing

    config = _config(config_path)
    flowset, flow_id = _load_for(flow, config)
    f = flowset.flows[flow_id]
    click.echo(drawing.mermaid(f) if fmt == "mermaid" else drawing.dot(f), nl=False)


@cli.command()
@config_option
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var"),
              show_default=True, help="runtime state: prompt cache, outboxes, recordings, front")
@click.option("--role", type=click.Choice(["all", "edge", "media", "acd"]), default="all",
              show_default=True, help="what this node runs: all of it (one box), or one part of a "
              "site: the SIP edge, media workers, or the ACD (README: Several nodes)")
def serve(config_path: Path | None, state_dir: Path, role: str) -> None:
    """Run the IVR: front (Kamailio), workers, broker, store and HTTP API."""
    from ivr import metrics_dir

    metrics_dir.prepare(state_dir)  # before prometheus_client is imported (ivr/metrics_dir.py)
    from ivr.serve import serve as run_server

    config = _config(config_path)
    if "--log-level" not in sys.argv:
        log.setup("INFO")
    sys.exit(run_server(config, config_path, state_dir, role))


@cli.command()
def schema() -> None:
    """Print the JSON Schema of flow files (for editor validation and completion)."""
    from ivr.flow.schema import flow_schema

    _emit_json(flow_schema())


# -- agent queues (ivr/acd): live state from a running server, reports from the store ----------
@cli.command()
@config_option
@_server_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def queues(config_path: Path | None, server: str | None, token: str | None, state_dir: Path,
           as_json: bool) -> None:
    """Live queue state from a running server."""
    from ivr.acd.remote import call, render_queues

    url, bearer = _api(server, config_path, token, state_dir)
    doc = call(url, "GET", "/queues", token=bearer)
    _emit_json(doc) if as_json else click.echo(render_queues(doc), nl=False)


@cli.group(invoke_without_command=True)
@config_option
@_server_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.pass_context
def agents(ctx: click.Context, config_path: Path | None, server: str | None, token: str | None,
           state_dir: Path, as_json: bool) -> None:
    """Live agent state from a running server (`ivr agents secret NAME` sets a registrar secret)."""
    if ctx.invoked_subcommand is not None:
        return
    from ivr.acd.remote import call, render_agents

    url, bearer = _api(server, config_path, token, state_dir)
    doc = call(url, "GET", "/agents", token=bearer)
    _emit_json(doc) if as_json else click.echo(render_agents(doc), nl=False)


@agents.command("secret")
@click.argument("name")
@config_option
@click.option("--remove", is_flag=True, help="delete the agent's secret: it can no longer register")
def agent_secret(name: str, config_path: Path | None, remove: bool) -> None:
    """Set the secret NAME's softphone registers with (prompted twice, or one line on stdin).

    Only the digest HA1 (md5 of NAME:realm:secret) is written, to front.agent_secrets (mode
    0600). A running server takes it on SIGHUP.
    """
    from ivr.front.agent_secrets import SecretsFile, check_agent_name, secrets_path

    config = _config(config_path)
    check_agent_name(name)
    if name not in config.agents:
        raise click.UsageError(f"no agent {name!r} in the config's agents:")
    path = secrets_path(config)
    secrets = SecretsFile.load(path)
    if remove:
        if not secrets.remove(name):
            raise click.UsageError(f"agent {name!r} has no secret in {path}")
    else:
        secrets.set(name, config.front.auth_realm, _read_secret(name))
    secrets.save()
    click.echo(f"{name}: secret {'removed from' if remove else 'written to'} {path} "
               "(SIGHUP a running `ivr serve` to apply)", err=True)


def _read_secret(name: str) -> str:
    """Prompted twice (not echoed) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = click.prompt(f"secret for {name}", hide_input=True)
        if click.prompt("again", hide_input=True) != first:
            raise click.UsageError("the two entries differ")
        return str(first)
    return sys.stdin.readline().rstrip("\r\n")


@cli.command()
@click.argument("action", type=click.Choice(["login", "logout", "ready", "away"]))
@click.argument("name")
@config_option
@_server_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def agent(action: str, name: str, config_path: Path | None, server: str | None,
          token: str | None, state_dir: Path, as_json: bool) -> None:
    """Change an agent's state on a running server (login, logout, ready, away)."""
    from ivr.acd.remote import call

    url, bearer = _api(server, config_path, token, state_dir)
    doc = call(url, "POST", f"/agents/{name}/{action}", token=bearer)
    _emit_json(doc) if as_json else click.echo(f"{name}: {doc['state']}")


@cli.command("log-level")
@click.argument("level", required=False,
                type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--logger", "logger_name", default="", metavar="NAME",
              help="only this logger and those under it (e.g. ivr.sip); default: the root")
@config_option
@_server_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def log_level(level: str | None, logger_name: str, config_path: Path | None, server: str | None,
              token: str | None, state_dir: Path, as_json: bool) -> None:
    """Change a running server's log level, in the supervisor and every worker (no LEVEL: show
    the levels). SIGUSR1/SIGUSR2 to `ivr serve` do the same one step at a time."""
    from ivr.acd.remote import call

    url, bearer = _api(server, config_path, token, state_dir)
    if level is None:
        doc = call(url, "GET", "/log-level", token=bearer)
    else:
        doc = call(url, "PUT", "/log-level", {"level": level.upper(), "logger": logger_name},
                   token=bearer)
    if as_json:
        _emit_json(doc)
        return
    for name, value in sorted(doc["levels"].items()):
        click.echo(f"{name}: {value}")
    lagging = sorted(w for w, applied in doc["workers"].items() if not applied)
    if lagging:
        click.echo(f"workers not yet at these levels: {', '.join(lagging)}", err=True)
        sys.exit(1)


@cli.command()
@config_option
@click.option("--since", default=None, help="from this date or ISO time (default: everything)")
@click.option("--service-level", "threshold", default=20.0, show_default=True, type=float,
              help="seconds within which an answer counts toward the service level")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def report(config_path: Path | None, since: str | None, threshold: float, as_json: bool) -> None:
    """Calls, containment, transfers, abandonment, service level and ASA, per flow and queue."""
    from ivr.acd.report import build_report, render
    from ivr.store.open import open_backend

    config = _config(config_path)
    start = 0.0
    if since:
        try:
            when = dt.datetime.fromisoformat(since)
        except ValueError:
            raise click.BadParameter(f"{since!r} is not a date (YYYY-MM-DD or ISO 8601)",
                                     param_hint="--since") from None
        start = (when if when.tzinfo else when.astimezone()).timestamp()
    db = open_backend(config.store, read_only=True)
    try:
        doc = build_report(db, start, threshold)
    finally:
        db.close()
    _emit_json(doc) if as_json else click.echo(render(doc), nl=False)


@cli.command("token")
@click.argument("role", metavar="admin|read|agent:NAME")
def token_cmd(role: str) -> None:
    """Make an API token: the token on stdout, its hashed entry for http.tokens_file on stderr."""
    from ivr.access.tokens import digest, new_token, parse_principal

    try:
        who = parse_principal(role)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ROLE") from None
    token = new_token()
    click.echo(token)
    click.echo(f"# for http.tokens_file (or {role}={token} in IVR_TOKENS):\n"
               f"{who}=sha256:{digest(token).hex()}", err=True)


@cli.command("purge")
@config_option
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var"),
              show_default=True, help="the state directory `ivr serve` uses (recordings)")
@click.option("--recordings-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="override retention.recordings_days for this run")
@click.option("--transcripts-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="override retention.transcripts_days for this run")
@click.option("--variables-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="override retention.variables_days for this run")
@click.option("--dry-run", is_flag=True, help="report what would go, change nothing")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def purge_cmd(config_path: Path | None, state_dir: Path, recordings_days: float | None,
              transcripts_days: float | None, variables_days: float | None, dry_run: bool,
              as_json: bool) -> None:
    """Apply retention now: delete old recordings, blank old CDR transcripts and variables."""
    from ivr.retention import purge
    from ivr.store.open import open_backend, sqlite_path

    config = _config(config_path)
    overrides = {k: v for k, v in (("recordings_days", recordings_days),
                                   ("transcripts_days", transcripts_days),
                                   ("variables_days", variables_days)) if v is not None}
    settings = config.retention.model_copy(update=overrides)
    if not settings.active:
        raise click.UsageError("no retention is configured: set retention.* in the config or "
                               "give --recordings-days/--transcripts-days/--variables-days")
    # a SQLite path, so that a dry run never creates the file; PostgreSQL: its connection
    target = sqlite_path(config.store) if config.store.url is None else open_backend(config.store)
    try:
        report = purge(settings, target, state_dir / "recordings", dry_run=dry_run)
    finally:
        if not isinstance(target, Path):
            target.close()
    if as_json:
        _emit_json(report.as_json())
    else:
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"{verb} {len(report.recordings)} recordings; "
                   f"{'would blank' if dry_run else 'blanked'} {report.transcripts} transcripts "
                   f"and {report.variables} variable sets")


from ivr.call_cmd import call as _call_command  # noqa: E402 - registered after the group

cli.add_command(_call_command)

from ivr.pack_cmd import pack as _pack_command  # noqa: E402 - registered after the group

cli.add_command(_pack_command)


def main() -> None:
    """Entry point: known errors print cleanly; tracebacks only with IVR_DEBUG=1. A crash in
    native code (pjsua2, a recogniser) prints every thread's Python stack on stderr, which is
    the log of `ivr serve`, its workers and each `ivr test --sip` call."""
    with contextlib.suppress(OSError, ValueError):  # no real stderr (click's test runner)
        faulthandler.enable()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ProblemsError as exc:
        _print_problems(exc.problems)
        sys.exit(1)
    except IvrError as exc:
        click.echo(f"ivr: {exc}", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get("IVR_DEBUG"):
            raise
        click.echo(f"ivr: internal error: {type(exc).__name__}: {exc} (IVR_DEBUG=1 shows where)",
                   err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
