"""The command line: help on every verb, one-line errors with exit 1 on bad input."""

import os
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


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "generate", "--out", "x", "--rooms", "-3"],
        ["data", "generate", "--out", "x", "--rooms", "0"],
        ["data", "generate", "--out", "x", "--frames", "-1"],
        ["data", "generate", "--out", "x", "--width", "0"],
        ["data", "record-bag", "--building", "b", "--out", "x", "--seconds-per-room", "-2"],
        ["bench", "map", "--sizes", "-1"],
        ["eval", "--mode", "live", "--rate", "-1"],
        ["eval", "--confident", "7"],
        ["eval", "--ks", "0"],
        ["demo", "--rate", "nan"],
    ],
)
def test_bad_numbers_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"argument {argv[-2]}:" in err.splitlines()[-1]


def test_more_look_alikes_than_rooms_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "bldg"
    assert main(["data", "generate", "--out", str(out), "--rooms", "2"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "ERROR: --lookalike 4 exceeds --rooms 2: give 0 or 2..2"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "generate", "--out", "/proc/nope", "--rooms", "1", "--lookalike", "0"],
        ["demo", "--workdir", "/proc/nope"],
    ],
)
def test_unwritable_outputs_are_one_error_line(argv, capsys):
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and "/proc/nope" in lines[0]
    assert not [p for p in os.listdir("/proc") if "nope" in p]


@pytest.mark.parametrize("error", [ValueError("bad\nvalue"), OSError(28, "No space left")])
def test_value_and_os_errors_reaching_main_are_one_line(error, monkeypatch, capsys):
    def command(args):
        raise error

    parser = build_parser()
    args = parser.parse_args(["map", "info", "m.sqlite"])
    args.command = command
    monkeypatch.setattr(
        "crossover_ros.cli.main.build_parser",
        lambda: type("P", (), {"parse_args": lambda self, argv: args})(),
    )
    assert main(["map", "info", "m.sqlite"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ")
