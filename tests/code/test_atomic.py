"""Atomic writes: the target is replaced whole, or left as it was, and nothing else is left."""

from __future__ import annotations

import pytest

from components.atomic import replace_path, write_text


def test_a_file_is_replaced_and_no_temporary_is_left(tmp_path):
    target = tmp_path / "out" / "report.json"
    write_text(target, "first")
    assert write_text(target, "second") == target
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_a_folder_replaces_a_folder(tmp_path):
    target = tmp_path / "model"
    replace_path(target, lambda p: (p / "old.txt").write_text("old"), folder=True)
    replace_path(target, lambda p: (p / "new.txt").write_text("new"), folder=True)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_writer_may_make_a_folder_over_a_file(tmp_path):
    target = tmp_path / "data"
    write_text(target, "a file")
    replace_path(target, lambda p: (p.mkdir(), (p / "part").write_text("x")))
    assert (target / "part").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


@pytest.mark.parametrize("folder", [False, True])
def test_a_failed_write_leaves_the_previous_target_and_no_temporary(tmp_path, folder):
    target = tmp_path / "table"
    if folder:
        replace_path(target, lambda p: (p / "part").write_text("previous"), folder=True)
    else:
        write_text(target, "previous")

    def fail(path):
        (path / "part" if folder else path).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        replace_path(target, fail, folder=folder)
    assert (target / "part" if folder else target).read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["table"]
