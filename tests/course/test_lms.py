"""LMS export: the documented Canvas and Moodle import layouts, case-insensitive matching, refusals."""

import csv
import io

import pytest

from autograder.course.lms import ExportError, export, match, read_roster, render

CANVAS_ROSTER = """\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Homework 3 (4711)
    Points Possible,,,,,100
"Lovelace, Ada",101,S-001,ada,DGM 2026,
"Turing, Alan",102,S-002,Alan.T,DGM 2026,
"=HYPERLINK(""http://x"")",103,S-003,eve,DGM 2026,
Test Student,999,,,DGM 2026,
"""
MOODLE_ROSTER = """First name,Last name,ID number,Institution,Department,Email address
Ada,Lovelace,S-001,,,ada@uni.example
Alan,Turing,S-002,,,alan@uni.example
"""
GRADEBOOK = "student,total,max_total,status\nADA,91.5,100,ok\nalan.t,80,100,ok\nmallory,12,100,ok\n"


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_canvas_layout_matches_logins_case_insensitively_and_lists_the_unmatched():
    people = read_roster(CANVAS_ROSTER)
    assert [p.login for p in people] == ["ada", "Alan.T", "eve"]  # Points Possible and the test student skipped
    matched = match(people, {"ADA": "91.5", "alan.t": "80", "mallory": "12"})
    rows = _rows(render("canvas", matched, "Homework 3 (4711)"))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Homework 3 (4711)"]
    assert rows[1:] == [["Lovelace, Ada", "101", "S-001", "ada", "DGM 2026", "91.5"],
                        ["Turing, Alan", "102", "S-002", "Alan.T", "DGM 2026", "80"]]
    assert [p.login for p in matched.no_submission] == ["eve"] and matched.no_roster_entry == ("mallory",)


def test_moodle_layout_matches_emails():
    matched = match(read_roster(MOODLE_ROSTER), {"Ada@Uni.Example": "91.5"})
    rows = _rows(render("moodle", matched, "DGM assignment"))
    assert rows[0] == ["First name", "Last name", "ID number", "Username", "Email address", "DGM assignment"]
    assert rows[1] == ["Ada", "Lovelace", "S-001", "", "ada@uni.example", "91.5"]
    assert [p.first for p in matched.no_submission] == ["Alan"]


def test_a_name_that_is_a_formula_stays_text():
    matched = match(read_roster(CANVAS_ROSTER), {"eve": "50"})
    assert _rows(render("canvas", matched, "HW"))[1][0].startswith("'=HYPERLINK")


@pytest.mark.parametrize("roster, problem", [
    ("Student,SIS Login ID\nA,ada\nB,ADA\n", "both name 'ada'"),
    ("Student,Section\nA,1\n", "no column of logins"),
    ("", "empty"),
])
def test_a_roster_that_is_ambiguous_or_unusable_writes_nothing(tmp_path, roster, problem):
    (tmp_path / "gradebook.csv").write_text(GRADEBOOK)
    (tmp_path / "roster.csv").write_text(roster)
    with pytest.raises(ExportError, match=problem):
        export(tmp_path, "canvas", tmp_path / "roster.csv", "HW")
    assert not (tmp_path / "canvas.csv").exists()


def test_export_writes_the_final_column_when_there_is_one(tmp_path):
    (tmp_path / "gradebook.csv").write_text("student,total,grand_total,final,status\nada,90,95,85.5,ok\n")
    (tmp_path / "roster.csv").write_text(CANVAS_ROSTER)
    target, matched = export(tmp_path, "canvas", tmp_path / "roster.csv", "HW")
    assert _rows(target.read_text())[1][-1] == "85.5" and len(matched.scores) == 1


KIM = "name,login,email\nKim Lee,kim,kim@u.edu\nBob,bob,bob@u.edu\n"


@pytest.mark.parametrize("second", ["kim@u.edu", "KIM", "Kim@U.Edu "])
def test_two_submissions_of_one_row_cost_only_themselves_and_name_each_other(second):
    matched = match(read_roster(KIM), {"kim": "100", second: "3", "bob": "50"})
    assert [(p.login, s) for p, s in matched.scores] == [("bob", "50")]
    assert [s for s, _ in matched.not_exported] == sorted(["kim", second])
    why = matched.not_exported[0][1]
    assert "'kim'" in why and repr(second) in why and "row 2 (Kim Lee)" in why and "100" not in why
    assert matched.no_submission == () and matched.no_roster_entry == ()


@pytest.mark.parametrize("look_alike", ["\u212aim", "\uff4bim", "ki\u1d50", "kim@u.edu\u200b"])
def test_a_look_alike_id_matches_nobody(look_alike):
    matched = match(read_roster(KIM), {look_alike: "0", "bob": "50"})
    assert [(p.login, s) for p, s in matched.scores] == [("bob", "50")]
    assert [p.login for p in matched.no_submission] == ["kim"]
    assert look_alike in matched.no_roster_entry + tuple(s for s, _ in matched.not_exported)


def test_a_look_alike_next_to_the_real_id_leaves_the_real_one_exported_and_says_why():
    matched = match(read_roster(KIM), {"kim": "100", "\u212aim": "0"})
    assert [(p.login, s) for p, s in matched.scores] == [("kim", "100")]
    assert matched.not_exported == (("\u212aim", "looks like an id of roster row 2 (Kim Lee) "
                                                "but is spelled with other characters"),)


def test_export_writes_everyone_but_a_clashing_pair(tmp_path):
    (tmp_path / "gradebook.csv").write_text("student,total,max_total,status\nkim,100,100,ok\n"
                                            "kim@u.edu,3,100,ok\nbob,50,100,ok\n")
    (tmp_path / "roster.csv").write_text(KIM)
    target, matched = export(tmp_path, "moodle", tmp_path / "roster.csv", "HW")
    assert [row[2:] for row in _rows(target.read_text())[1:]] == [["", "bob", "bob@u.edu", "50"]]
    assert len(matched.not_exported) == 2


def test_the_export_command_names_each_submission_it_left_out(tmp_path, capsys):
    from autograder.cli import main

    (tmp_path / "gradebook.csv").write_text("student,total,max_total,status\nkim,100,100,ok\n"
                                            "KIM,3,100,ok\nbob,50,100,ok\n")
    (tmp_path / "roster.csv").write_text(KIM)
    assert main(["export", str(tmp_path), "--lms", "canvas", "--roster", str(tmp_path / "roster.csv")]) == 0
    out = capsys.readouterr().out
    assert "submitted, not exported: KIM (" in out and "submitted, not exported: kim (" in out
