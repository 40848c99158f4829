"""bot.py as the entry point: what it exposes, the click CLI, .env reading, the one LINE error mapping."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from linebot.v3.messaging.exceptions import ApiException

import bot
from handlers import cli, commands
from handlers.config import Config, load_dotenv_if_present, read_env_file
from handlers.line_api import LineApi, LineApiError

COMMANDS = {"serve", "demo", "worker", "init-db", "institution", "logs", "stats", "admin", "conditions", "export",
            "qr", "richmenu", "diagram", "data", "keys", "purge"}
SUBCOMMANDS = {"institution": {"add"}, "admin": {"invite", "grant"}, "conditions": {"announce"}, "richmenu": {"sync"},
               "data": {"seal"}, "keys": {"rotate"}}
OPTIONS = {  # every option the argparse CLI had, by command path
    ("serve",): ["--host", "--port"],
    ("demo",): ["--host", "--port", "--sim-port"],
    ("worker",): ["--burst", "--with-scheduler"],
    ("logs",): ["--user", "--flow", "--level", "--since", "--until", "-f", "--follow"],
    ("export",): ["--month", "--out"],
    ("qr",): ["--out", "--basic-id"],
    ("data", "seal"): ["--dry-run", "--batch"],
    ("keys", "rotate"): ["--dry-run", "--batch"],
    ("purge",): ["--dry-run"],
    ("richmenu", "sync"): ["--relink"],
    ("diagram",): ["--out"],
}
VALID_KEY = Fernet.generate_key().decode()  # checked at start-up: every personal field is sealed with it
SETTINGS = ("LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "DATA_ENCRYPTION_KEYS", "SIGNING_KEY")
ROOT = Path(bot.ROOT)


def test_bot_keeps_exposing_what_others_import():
    assert ROOT == Path(__file__).resolve().parents[1] and (ROOT / "bot.py").is_file()
    for name in ("create_app", "wsgi_app", "main", "local_env_file", "MAX_BODY_BYTES"):
        assert hasattr(bot, name), name
    assert bot.MAX_BODY_BYTES == 1024 * 1024


def test_help_lists_every_command_and_option():
    runner = CliRunner()
    out = runner.invoke(cli.cli, ["--help"])
    assert out.exit_code == 0
    listed = {line.split()[0] for line in out.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == COMMANDS
    assert set(cli.cli.commands) == COMMANDS
    for group, subs in SUBCOMMANDS.items():
        assert set(cli.cli.commands[group].commands) == subs, group
    for path, options in OPTIONS.items():
        out = runner.invoke(cli.cli, [*path, "--help"])
        assert out.exit_code == 0, path
        for option in options:
            assert option in out.output, (path, option)
    assert "-h, --help" in runner.invoke(cli.cli, ["-h"]).output  # argparse's -h still works


def test_usage_errors_exit_2_like_argparse():
    assert cli.main(["no-such-command"]) == 2
    assert cli.main(["export", "pdf", "--month", "2026-11"]) == 2
    assert cli.main(["export", "fees"]) == 2  # --month is required
    assert cli.main(["logs", "--level", "loud"]) == 2
    assert cli.main(["--help"]) == 0


def test_python_bot_py_help_runs_as_a_script():
    out = subprocess.run([sys.executable, "bot.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "richmenu" in out.stdout
    out = subprocess.run([sys.executable, "bot.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No settings in the environment, a cwd of our own (the CLI changes it), DATA_DIR under tmp."""
    monkeypatch.chdir(tmp_path)
    for name in (*SETTINGS, "DATA_DIR", "PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))
    return tmp_path


def _capture(monkeypatch, name):
    seen = {}

    def fake(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        return 0

    monkeypatch.setattr(commands, name, fake)
    return seen


@pytest.mark.parametrize("argv, expected", [
    (["worker"], (False, None)),
    (["worker", "--burst"], (True, None)),
    (["worker", "--burst", "--with-scheduler"], (True, True)),
    (["worker", "--without-scheduler"], (False, False)),
])
def test_worker_scheduler_flag_is_passed_on(clean_env, monkeypatch, argv, expected):
    for name in SETTINGS:
        monkeypatch.setenv(name, VALID_KEY if name == "DATA_ENCRYPTION_KEYS" else "x")
    seen = _capture(monkeypatch, "cmd_worker")
    assert cli.main(argv) == 0
    assert seen["args"][1:] == expected


def test_scheduler_defaults_to_on_unless_burst(monkeypatch):
    """``worker.work(with_scheduler=…)``: on by default, off with --burst, as the flags say otherwise."""
    import rq

    from handlers import logs, outbox, runtime

    calls = []

    class Worker:
        def __init__(self, *_, **__):
            pass

        def work(self, burst, with_scheduler, logging_level):
            calls.append((burst, with_scheduler))

    class Rt:
        log_dir = None
        worker_redis = None

        def queue(self, *_, **__):
            return None

    monkeypatch.setattr(rq, "SimpleWorker", Worker)
    monkeypatch.setattr(runtime, "build", lambda *_, **__: Rt())
    monkeypatch.setattr(logs, "configure", lambda *_, **__: None)
    monkeypatch.setattr(outbox, "sweep", lambda **_: 0)
    monkeypatch.setattr(commands.threading, "Thread", lambda **_: type("T", (), {"start": lambda self: None})())
    config = Config("s", "t", ("k",), "g")
    for burst, flag in [(False, None), (True, None), (True, True), (False, False)]:
        commands.cmd_worker(config, burst, flag)
    assert calls == [(False, True), (True, False), (True, True), (False, False)]


def test_ops_commands_fall_back_on_the_local_keys(clean_env, monkeypatch):
    data_dir = clean_env / "var"
    keys = read_env_file(bot.local_env_file(data_dir))
    seen = _capture(monkeypatch, "cmd_stats")
    assert cli.main(["stats"]) == 0
    assert seen["args"][0].signing_key == keys["SIGNING_KEY"]
    assert Path.cwd() == ROOT, "commands run from the project directory"


def test_commands_needing_line_do_not_fall_back_and_name_the_missing_setting(clean_env, capsys, monkeypatch):
    bot.local_env_file(clean_env / "var")
    seen = _capture(monkeypatch, "cmd_conditions_announce")
    assert cli.main(["conditions", "announce"]) == 2
    assert "LINE_CHANNEL_SECRET" in capsys.readouterr().err and not seen


def test_local_keys_never_override_the_environment(clean_env, monkeypatch):
    bot.local_env_file(clean_env / "var")
    monkeypatch.setenv("SIGNING_KEY", "from-the-environment")
    for name in SETTINGS[:3]:
        monkeypatch.setenv(name, VALID_KEY if name == "DATA_ENCRYPTION_KEYS" else "x")
    seen = _capture(monkeypatch, "cmd_stats")
    assert cli.main(["stats"]) == 0
    assert seen["args"][0].signing_key == "from-the-environment"


# --------------------------------------------------------------------------------------------- .env


def test_dotenv_is_read_without_overriding_the_environment(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# a comment\n"
        "export BOT_TEST_PLAIN=plain\n"
        "BOT_TEST_QUOTED=\"with spaces\"\n"
        "BOT_TEST_SINGLE='single'\n"
        "BOT_TEST_SET=from-file\n"
        "BOT_TEST_DOLLAR=a$b${HOME}\n"
        "BOT_TEST_COMMENTED=value # note\n",
        encoding="utf-8",
    )
    for name in ("PLAIN", "QUOTED", "SINGLE", "DOLLAR", "COMMENTED"):
        monkeypatch.delenv(f"BOT_TEST_{name}", raising=False)
    monkeypatch.setenv("BOT_TEST_SET", "from-environment")
    monkeypatch.chdir(tmp_path)
    load_dotenv_if_present()
    assert os.environ["BOT_TEST_PLAIN"] == "plain"
    assert os.environ["BOT_TEST_QUOTED"] == "with spaces"
    assert os.environ["BOT_TEST_SINGLE"] == "single"
    assert os.environ["BOT_TEST_SET"] == "from-environment", "what is set is never overridden"
    assert os.environ["BOT_TEST_DOLLAR"] == "a$b${HOME}", "secrets are taken literally"
    assert os.environ["BOT_TEST_COMMENTED"] == "value"


def test_no_dotenv_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_dotenv_if_present()  # nothing to read, nothing raised
    load_dotenv_if_present(tmp_path / "missing.env")


def test_local_env_file_is_generated_once_and_read_back(tmp_path):
    path = bot.local_env_file(tmp_path)
    first = read_env_file(path)
    assert set(first) == set(SETTINGS) and all(first.values())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_env_file(bot.local_env_file(tmp_path)) == first


# ---------------------------------------------------------------------------------- LINE error mapping


def test_line_api_call_maps_every_failure_and_honours_the_read_timeout():
    line = LineApi("token", "http://127.0.0.1:9", "http://127.0.0.1:9", timeout=4.0)
    seen = {}

    def ok(*args, _request_timeout, **kwargs):
        seen["timeout"] = _request_timeout
        return "done"

    assert line.call("x", ok) == "done" and seen["timeout"] == (2.0, 4.0)
    assert line.call("x", ok, read_timeout=30.0) == "done" and seen["timeout"] == (2.0, 30.0)

    def refused(*_, **__):
        exc = ApiException(status=429, reason="Too Many Requests")
        exc.body = b'{"message":"You have reached your monthly limit."}'
        raise exc

    with pytest.raises(LineApiError) as err:
        line.call("x", refused)
    assert err.value.status == 429 and err.value.monthly_quota and not err.value.transient

    def unreachable(*_, **__):
        raise ConnectionRefusedError()

    with pytest.raises(LineApiError) as err:
        line.call("x", unreachable)
    assert err.value.status is None and err.value.transient


def test_richmenu_has_no_error_mapping_of_its_own():
    source = (ROOT / "handlers" / "richmenu.py").read_text(encoding="utf-8")
    assert "ApiException" not in source and "urllib3" not in source
