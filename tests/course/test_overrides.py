"""Overrides: parsed all-or-nothing, a check's or a question's score replaced, newer rows replace older ones."""

import pytest

from autograder.course.overrides import Override, OverrideError, apply, combine, parse, render

STUDENTS = {"ada": {"C4": [3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0], "B2": [1.0, 1.0]}, "=bob": {"C4": [3.0] * 3}}
GOOD = "student,item,score,reason,by\nada,C4.2,2,regrade: stable form is right,TA Kim\nada,b2,1.5,partial credit,TA Lee\n"


def test_a_check_and_a_question_override_change_only_their_scores():
    overrides = parse(GOOD, STUDENTS)
    assert [(o.item, o.score) for o in overrides] == [("C4.2", 2.0), ("B2", 1.5)]
    scores = {"C4": 9.0, "B2": 0.0, "A1": 6.0}
    points = {"C4": [3.0, 0.0, 1.0, 1.0, 1.0, 1.0, 2.0], "B2": [0.0, 0.0]}
    assert apply(scores, points, overrides) == {"C4": 11.0, "B2": 1.5, "A1": 6.0}


@pytest.mark.parametrize("row, problem", [
    ("mallory,C4,1,x,y", "unknown student"),
    ("ada,Z9,1,x,y", "neither a question id"),
    ("ada,C4.9,1,x,y", "has no check 9"),
    ("ada,C4.1,4,x,y", "outside 0…3 of C4.1"),
    ("ada,C4,12,x,y", "outside 0…11 of C4"),
    ("ada,C4,abc,x,y", "not a number"),
    ("ada,C4,1,,y", "needs a reason"),
])
def test_bad_rows_are_refused_with_every_problem_listed(row, problem):
    with pytest.raises(OverrideError, match=problem) as info:
        parse("student,item,score,reason,by\nada,C4.2,2,fine,TA\n" + row + "\n", STUDENTS)
    assert len(info.value.problems) == 1


def test_duplicates_and_a_missing_header_are_refused():
    with pytest.raises(OverrideError, match="second override"):
        parse("student,item,score,reason,by\nada,C4,1,a,b\nada,c4,2,a,b\n", STUDENTS)
    with pytest.raises(OverrideError, match="header"):
        parse("ada,C4,1,a,b\n", STUDENTS)


def test_a_newer_override_replaces_the_kept_one_and_the_store_is_inert_csv():
    kept = [Override("ada", "C4", None, 5.0, "old", "TA"), Override("=bob", "C4", 1, 1.0, "=cmd()", "TA")]
    merged = combine(kept, [Override("ada", "C4", None, 7.0, "new", "TA")])
    assert sorted((o.student, o.score) for o in merged) == [("=bob", 1.0), ("ada", 7.0)]
    text = render(merged)
    assert "\n'=bob,C4.1,1,'=cmd(),TA\n" in text
    assert parse(text, STUDENTS) == sorted(merged, key=lambda o: (o.student, o.qid))  # the store reads back
