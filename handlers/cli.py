"""``python bot.py <command>``: the command line, parsed with click.

Every command runs from the project directory with ``.env`` read (never
overriding the environment) and the configuration checked first: a missing
setting is one line naming it and exit status 2. Ops commands that need no
LINE credentials (init-db, institution, stats, logs, admin, qr, export, purge) fall
back on the local demo's keys (``DATA_DIR/local.env``) when SIGNING_KEY is
not set. What each command does is in ``handlers.commands`` / ``handlers.demo``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from handlers import commands
from handlers.config import ROOT, Config, ConfigError, load_dotenv_if_present

CONTEXT = {"help_option_names": ["-h", "--help"]}
OUT_PATH = click.Path(dir_okay=False, path_type=Path)  # relative paths: from the project directory


def _config(*, local_fallback: bool = False) -> Config:
    """The configuration from the environment, or exit 2 with the one line that names what is wrong."""
    if local_fallback and not os.environ.get("SIGNING_KEY"):
        local = Path(os.environ.get("DATA_DIR", "var"), "local.env")
        if local.exists():
            load_dotenv_if_present(local)
    try:
        return Config.from_env()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise click.exceptions.Exit(2) from None


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """中小企業119 専門家派遣 LINE bot"""
    os.chdir(ROOT)
    load_dotenv_if_present()


@cli.command(help="run the bot alone")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="[default: PORT, 8000]")
def serve(host: str, port: int | None) -> int:
    config = _config()
    return commands.cmd_serve(config, host, port or config.port)


@cli.command(help="run everything locally (make run)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, envvar="PORT", show_default=True, show_envvar=True)
@click.option("--sim-port", type=int, default=8001, envvar="SIM_PORT", show_default=True, show_envvar=True)
def demo(host: str, port: int, sim_port: int) -> int:
    from handlers.demo import cmd_demo

    return cmd_demo(host, port, sim_port)


@cli.command(help="RQ worker for pushes and deferred events")
@click.option("--burst", is_flag=True, help="work until the queues are empty, then exit")
@click.option("--with-scheduler/--without-scheduler", default=None,
              help="run RQ's scheduler (delayed retries, deferred events, report reminders) "
                   "[default: on, off with --burst]")
def worker(burst: bool, with_scheduler: bool | None) -> int:
    return commands.cmd_worker(_config(), burst, with_scheduler)


@cli.command("init-db", help="create or migrate the schema")
def init_db() -> int:
    return commands.cmd_init_db(_config(local_fallback=True))


@cli.group(context_settings=CONTEXT, help="manage institutions")
def institution() -> None:
    pass


@institution.command("add", help="register a support institution; KIND: 認定経営革新等支援機関 / 認定支援機関 / "
                                 "よろず支援拠点 / よろず")
@click.argument("name")
@click.argument("kind")
def institution_add(name: str, kind: str) -> int:
    return commands.cmd_institution_add(_config(local_fallback=True), name, kind)


@cli.command(help="read the JSON logs back")
@click.option("--user", help="LINE user id or its pseudonym")
@click.option("--flow")
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--since", help="ISO time or 15m / 2h")
@click.option("--until", help="ISO time")
@click.option("-f", "--follow", is_flag=True)
def logs(user: str | None, flow: str | None, level: str | None, since: str | None, until: str | None,
         follow: bool) -> int:
    return commands.cmd_logs(_config(local_fallback=True), user=user, flow=flow, level=level, since=since,
                             until=until, follow=follow)


@cli.command(help="counts per status")
def stats() -> int:
    return commands.cmd_stats(_config(local_fallback=True))


@cli.group(context_settings=CONTEXT, help="bootstrap the secretariat")
def admin() -> None:
    pass


@admin.command(help="print a one-time code (24 h) to send to the bot in LINE")
def invite() -> int:
    return commands.cmd_admin(_config(local_fallback=True), "invite", None)


@admin.command(help="make a LINE user id a secretariat member (automation)")
@click.argument("user_id")
def grant(user_id: str) -> int:
    return commands.cmd_admin(_config(local_fallback=True), "grant", user_id)


@cli.group(context_settings=CONTEXT, help="commission conditions")
def conditions() -> None:
    pass


@conditions.command(help="send a new conditions version to every agreed expert")
def announce() -> int:
    return commands.cmd_conditions_announce(_config())


@cli.group(context_settings=CONTEXT, help="personal data at rest")
def data() -> None:
    pass


@data.command(help="encrypt personal values still stored in plaintext (after an upgrade)")
@click.option("--dry-run", is_flag=True, help="only count")
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True, help="rows per transaction")
def seal(dry_run: bool, batch: int) -> int:
    return commands.cmd_data_seal(_config(local_fallback=True), dry_run, batch)


@cli.group(context_settings=CONTEXT, help="encryption keys (DATA_ENCRYPTION_KEYS, newest first)")
def keys() -> None:
    pass


@keys.command(help="re-encrypt every personal value and photo with the newest key")
@click.option("--dry-run", is_flag=True, help="only count what is under older keys")
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True, help="rows per transaction")
def rotate(dry_run: bool, batch: int) -> int:
    return commands.cmd_keys_rotate(_config(local_fallback=True), dry_run, batch)


@cli.command(help="delete what [retention] in program.toml no longer allows keeping (the worker does it daily)")
@click.option("--dry-run", is_flag=True, help="only count")
def purge(dry_run: bool) -> int:
    return commands.cmd_purge(_config(local_fallback=True), dry_run)


@cli.command(help="accepted reports of a fee month: fees CSV or 全銀 transfer file")
@click.argument("kind", type=click.Choice(["fees", "zengin"]))
@click.option("--month", required=True, help="YYYY-MM (the month of the dispatch dates, Asia/Tokyo)")
@click.option("--out", type=OUT_PATH)
def export(kind: str, month: str, out: Path | None) -> int:
    return commands.cmd_export(_config(local_fallback=True), kind, month, out)


@cli.command(help="QR code PNG that opens the chat with an institution's code")
@click.argument("institution")
@click.option("--out", type=OUT_PATH)
@click.option("--basic-id", help="the account's basic id (@xxxx); asked from LINE if omitted")
def qr(institution: str, out: Path | None, basic_id: str | None) -> int:
    return commands.cmd_qr(_config(local_fallback=True), institution, out, basic_id)


@cli.group(context_settings=CONTEXT, help="rich menus: one per role, created through the Messaging API")
def richmenu() -> None:
    pass


@richmenu.command(help="create what is missing or changed, set the default, delete old menus")
@click.option("--relink", is_flag=True, help="link every staff member's and expert's menu again")
def sync(relink: bool) -> int:
    return commands.cmd_richmenu(_config(), relink)


@cli.command(help="draw every flow (mermaid) into docs/flows.md")
@click.option("--out", default="docs/flows.md", show_default=True, type=OUT_PATH)
def diagram(out: Path) -> int:
    return commands.cmd_diagram(out)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (usage errors: 2, as before)."""
    try:
        result = cli.main(args=argv, prog_name="bot.py", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return result if isinstance(result, int) else 0
