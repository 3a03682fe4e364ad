"""The command line: help on every verb, one-line errors with exit 1 on bad input."""

import subprocess
import sys

import pytest

from crossover_ros.cli.main import build_parser, main


def _verbs(parser, prefix=()):
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            yield (*prefix, name)
            yield from _verbs(sub, (*prefix, name))


def test_every_verb_has_help(capsys):
    verbs = list(_verbs(build_parser()))
    assert ("data", "generate") in verbs and ("map", "build") in verbs and ("demo",) in verbs
    for verb in verbs:
        with pytest.raises(SystemExit) as exit_info:
            main([*verb, "--help"])
        assert exit_info.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_bad_input_gives_one_error_line_and_exit_1(tmp_path):
    missing = tmp_path / "nothing.sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "crossover_ros.cli.main", "map", "info", str(missing)],
        capture_output=True,
        cwd=tmp_path,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ERROR: map database {missing} not found; build it with 'map build'"
    ]
    assert "Traceback" not in result.stderr


def test_corrupt_map_and_bad_building_are_one_line_errors(tmp_path, capsys):
    corrupt = tmp_path / "map.sqlite"
    corrupt.write_bytes(b"\x00garbage" * 64)
    assert main(["map", "info", str(corrupt)]) == 1
    assert capsys.readouterr().err.startswith("ERROR: ")
    assert (
        main(["map", "build", "--scans", str(tmp_path / "none"), "--out", str(tmp_path / "m")]) == 1
    )
    assert "ERROR: " in capsys.readouterr().err
