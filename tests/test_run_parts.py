"""eventstore.parts.run_parts: the one way the end of day and a rebuild run in parts."""

from __future__ import annotations

import pytest
from support import part_tasks

from domain.errors import LedgerError
from eventstore.parts import PartCrashed, run_parts


def test_the_parts_answers_come_back_in_the_parts_order_and_the_first_parts_error_wins(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    tasks = [(part_tasks.answer, ("a",)), (part_tasks.answer, ("b",)), (part_tasks.answer, ("c",))]
    assert run_parts("a job", url, tasks) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="^first$"):
        run_parts(
            "a job",
            url,
            [(part_tasks.answer, ("a",)), (part_tasks.refuse, ("first",)), (part_tasks.refuse, ("second",))],
        )


def test_a_part_that_dies_without_an_answer_is_named_not_a_broken_pool(tmp_path):
    with pytest.raises(PartCrashed, match="^a rebuild of book in parts: part 1 of 2 stopped without an answer$"):
        run_parts(
            "a rebuild of book in parts", f"sqlite:///{tmp_path}/l.db", [(part_tasks.die, ()), (part_tasks.die, ())]
        )


def test_a_job_is_not_split_over_a_store_other_processes_cannot_open_nor_into_too_many_parts(tmp_path):
    with pytest.raises(LedgerError, match="^a job needs a database file that other processes can open$"):
        run_parts("a job", "sqlite:///:memory:", [(part_tasks.answer, ("a",))])
    with pytest.raises(ValueError, match=r"a job: 65 parts \(1 to 64\)"):
        run_parts("a job", f"sqlite:///{tmp_path}/l.db", [(part_tasks.answer, ("a",))] * 65)


def test_a_rebuild_whose_part_died_is_one_line_and_exit_2_not_a_traceback(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli.main import cli
    from projections import runner

    def part_died(*_, **__):
        raise PartCrashed("a rebuild of book in parts: part 2 of 2 stopped without an answer")

    url = f"sqlite:///{tmp_path}/l.db"
    assert CliRunner().invoke(cli, ["init", "--db", url]).exit_code == 0
    monkeypatch.setattr(runner, "rebuild", part_died)
    result = CliRunner().invoke(cli, ["projections", "rebuild", "book", "--workers", "2", "--db", url])
    assert result.exit_code == 2, result.output
    assert "part 2 of 2 stopped without an answer; the live views are unchanged" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, PartCrashed)
