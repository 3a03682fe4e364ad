"""Verbs that write a folder or a file: an existing one is refused unless --overwrite, and a
failure leaves nothing half-written."""

import json

import pytest

from crossover_ros.cli.main import main
from crossover_ros.errors import DataError
from crossover_ros.outputs import staged_output

TINY = ["--rooms", "1", "--lookalike", "0", "--rescans", "0", "--frames", "1"]
TINY += ["--width", "32", "--height", "24"]


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("ERROR:")]


def test_data_generate_refuses_an_existing_building_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "bldg"
    assert (
        main(
            [
                "data",
                "generate",
                "--out",
                str(out),
                "--rooms",
                "3",
                "--lookalike",
                "2",
                "--rescans",
                "0",
                "--frames",
                "2",
                "--width",
                "32",
                "--height",
                "24",
            ]
        )
        == 0
    )
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["data", "generate", "--out", str(out), *TINY]) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "--overwrite" in lines[0] and str(out) in lines[0]
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before, "left as it was"

    assert main(["data", "generate", "--out", str(out), *TINY, "--overwrite"]) == 0
    building = json.loads((out / "building.json").read_text())
    assert len(building["rooms"]) == 1
    scans = sorted(p.name for p in (out / "scans").iterdir())
    assert scans == [s["scan_id"] for s in building["scans"]], "no stale scans beside new ones"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left"


def test_record_bag_and_reports_refuse_existing_outputs(tmp_path, capsys):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    report = tmp_path / "report.md"
    report.write_text("mine")
    commands = [
        ["data", "record-bag", "--building", str(tmp_path), "--out", str(existing)],
        ["evaluate", "--model", "m", "--buildings", "b", "--cache", "c", "--report", str(report)],
        ["eval", "--bag", str(tmp_path), "--map", "m.sqlite", "--out", str(existing)],
        ["demo", "--workdir", str(existing)],
    ]
    for command in commands:
        assert main(command) == 1, command
        lines = _error_lines(capsys)
        assert len(lines) == 1 and "already exists" in lines[0] and "--overwrite" in lines[0]
    assert (existing / "keep.txt").read_text() == "mine" and report.read_text() == "mine"
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]


def test_demo_workdir_of_other_settings_is_refused(tmp_path, capsys):
    workdir = tmp_path / "demo"
    workdir.mkdir()
    (workdir / "demo.json").write_text(json.dumps({"seed": 0, "rooms": 8, "lookalike": 4}))
    assert main(["demo", "--workdir", str(workdir), "--rooms", "3", "--lookalike", "2"]) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "--overwrite" in lines[0] and "rooms" in lines[0]


def test_a_failure_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(target) as staging:
        staging.mkdir()
        (staging / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    target.mkdir()
    (target / "a").write_text("old")
    with pytest.raises(DataError, match="--overwrite"), staged_output(target):
        pass
    with staged_output(target, overwrite=True) as staging:
        staging.mkdir()
        (staging / "b").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
