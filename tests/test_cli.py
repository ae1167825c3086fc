"""The command line as a whole: every verb documents itself; errors become exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from sepsiscope import __version__
from sepsiscope.cli import app

runner = CliRunner()


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if hasattr(command, "commands"):  # a sub-app such as `store`
            yield from _commands(command, (*prefix, name))


def test_every_verb_has_help_text():
    root = typer.main.get_command(app)
    verbs = list(_commands(root))
    assert verbs, "no verbs registered"
    for path, command in verbs:
        assert command.help and command.help.strip(), f"`sepsiscope {' '.join(path)}` has no help"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage" in result.output


def test_verbs_that_make_something_offer_json():
    root = typer.main.get_command(app)
    for path, command in _commands(root):
        if hasattr(command, "commands") or path == ("serve",):  # serve runs until stopped
            continue
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--json" in options, f"`sepsiscope {' '.join(path)}` has no --json"


def test_version_and_unknown_verb():
    assert runner.invoke(app, ["--version"]).output.strip() == f"sepsiscope {__version__}"
    assert runner.invoke(app, ["no-such-verb"]).exit_code == 2


def test_flags_show_as_flags_in_help():
    """An on/off flag shows no type in --help (``--tiny``, not ``--tiny <bool>``), and stays a
    flag; options that take a value keep their type."""
    root = typer.main.get_command(app)
    for path in [(), *(path for path, _ in _commands(root))]:
        text = runner.invoke(app, [*path, "--help"], terminal_width=160).output
        assert "<bool>" not in text, f"`sepsiscope {' '.join(path)} --help` shows <bool>"
    demo = runner.invoke(app, ["demo", "--help"], terminal_width=160).output
    assert "--tiny " in demo and "<path>" in demo
    flags = {opt for p in root.commands["demo"].params if getattr(p, "is_flag", False)
             for opt in p.opts}  # fmt: skip
    assert {"--json", "--quiet", "--tiny"} <= flags


def test_demo_help_and_readme_agree_on_how_long_the_demo_takes():
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    documented = re.search(r"about (\d+) minutes on 2 CPU cores", readme)
    demo_help = runner.invoke(app, ["demo", "--help"], terminal_width=200).output
    shown = re.search(r"about (\d+) minutes on 2", demo_help)
    assert documented and shown and shown[1] == documented[1]


def test_json_output_on_an_input_error_is_json(tmp_path):
    result = CliRunner().invoke(
        app, ["measure", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "m"), "--json"]
    )
    assert result.exit_code == 2 and "no such video or manifest" in result.stderr
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == 2 and "no such video or manifest" in payload["error"]


SHARED_FLAGS = ("--out", "--store", "--seed", "--overwrite", "--fps", "--um-per-px", "--workers")


def test_shared_options_are_declared_once_in_common():
    cli = Path(__file__).parents[1] / "src" / "sepsiscope" / "cli"
    for path in cli.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for flag in SHARED_FLAGS:
            declared = text.count(f'typer.Option("{flag}"')
            expected = 1 if path.name == "_common.py" else 0
            assert declared == expected, f"{path.name} declares {flag} {declared} times"
