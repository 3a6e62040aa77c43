"""`ivr pack build`: a recorded prompt pack rendered once from the configured TTS."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def pack() -> None:
    """Recorded prompt packs (README: Languages: say-as, prompt packs and voices)."""


@pack.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--language", required=True, help="the pack's language, e.g. zh-CN; flows in "
              "this language (or its primary one) give the prompts")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="pack directory (default: prompts.packs of the config)")
@click.option("--force", is_flag=True, help="render every file again (studio recordings too)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="engine config (default ./ivr.yaml when present, else built-in defaults)")
def build(paths: tuple[Path, ...], language: str, out: Path | None, force: bool,
          config_path: Path | None) -> None:
    """Render DIR/<language>/<prompt id>.wav for every prompt of the flows in PATHS and
    DIR/<language>/say/<fragment>.wav for say-as; files already there are kept."""
    from ivr.config import load_config
    from ivr.flow.catalog import prompt_pairs
    from ivr.flow.loader import iter_yaml_files
    from ivr.flow.validate import load_flows
    from ivr.lang.sayas import supported
    from ivr.speech.pack_build import build_pack
    from ivr.speech.voices import language_voices, voice_of

    if config_path is not None and not config_path.is_file():
        raise click.BadParameter(f"{config_path} does not exist", param_hint="--config")
    config = load_config(config_path)
    if not supported(language):
        raise click.BadParameter(f"no say-as for {language!r}", param_hint="--language")
    target = out or config.prompts.packs
    if target is None:
        raise click.BadParameter("give --out DIR (or set prompts.packs)", param_hint="--out")
    roots = list(paths) or [Path(config.flows)]
    for p in roots:
        if not p.exists():
            raise click.BadParameter(f"{p} does not exist", param_hint="PATHS")
    result = load_flows(list(iter_yaml_files(roots, tests=False)), config)
    primary = language.lower().split("-")[0]
    # every text a flow can say while a call is in this language (its own language, or one a
    # flow switches to), system prompts from that language's catalogue included
    pairs = {f.id: [t for t, lang in prompt_pairs(f) if lang.lower().split("-")[0] == primary]
             for f in result.flows.values()}
    flows = [fid for fid, texts in pairs.items() if texts]
    texts = list(dict.fromkeys(t for ts in pairs.values() for t in ts))
    tts = config.speech.tts
    report = build_pack(texts, language, target, voice_of(tts), language_voices(tts),
                        force=force)
    for line in report.failed:
        click.echo(f"failed: {line}", err=True)
    click.echo(f"pack {target / language}: {len(flows)} flows, {len(report.written)} files "
               f"written, {len(report.kept)} kept, {len(report.failed)} failed")
    sys.exit(1 if report.failed else 0)
