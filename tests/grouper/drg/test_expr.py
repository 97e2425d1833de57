"""The condition language (grouper/drg/expr.py): grammar, postfix compilation, errors with positions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from grouper.drg.expr import (
    Cmp,
    Op,
    Sel,
    compile_condition,
    factored,
    guards,
    may_hold,
    parse,
    required_pdx_list,
    required_sex,
)
from grouper.errors import CodebookError


def _shape(text: str, owner: str = "X") -> list[str]:
    return _shape_of(compile_condition(text, "t", owner))


def _shape_of(program) -> list[str]:
    out = []
    for ins in program:
        if ins.op in (Op.DX_IN, Op.PROC_IN):
            out.append(f"{Sel(ins.sel).name}_IN {ins.prefix or '.'.join(filter(None, ins.list))}")
        elif ins.op in (Op.NUM, Op.SEX, Op.PARTS):
            out.append(f"{ins.op.name} {Cmp(ins.sel).name} {ins.const:g}")
        else:
            out.append(ins.op.name)
    return out


def test_wb2_compiles_to_the_postfix_program_of_rules_4_3():
    text = "(pdx in zd and odx in zd1 and pproc in ss) or (odx in zd2 and pproc in ss)"
    assert _shape(text, "WB2") == [
        "PDX_IN WB2.zd", "ODX_IN WB2.zd1", "AND", "PPROC_IN WB2.ss", "AND",
        "ODX_IN WB2.zd2", "PPROC_IN WB2.ss", "AND", "OR",
    ]  # fmt: skip


def test_precedence_not_and_or():
    assert _shape("not pproc valid or pdx in zd and true") == [
        "PPROC_IN valid",
        "NOT",
        "PDX_IN X.zd",
        "TRUE",
        "AND",
        "OR",
    ]


def test_intervals_owner_lists_prefixes_and_parts():
    assert _shape("birth_weight_g in (0, 1500)") == ["NUM GT 0", "NUM LT 1500", "AND"]
    assert _shape("birth_weight_g in [2500, inf)") == ["NUM GE 2500"]
    assert _shape("age_days in [0, 28]") == ["NUM GE 0", "NUM LE 28", "AND"]
    assert _shape("anyproc in CB4.ss and anyproc in CB5.ss", "CB2") == [
        "ANYPROC_IN CB4.ss",
        "ANYPROC_IN CB5.ss",
        "AND",
    ]
    assert _shape('anydx startswith "P07."') == ["ANYDX_IN P07."]
    assert _shape("parts(anydx in MDCZ.zd) >= 2") == ["PARTS GE 2"]
    assert _shape('sex != "1"') == ["SEX NE 1"]


def test_guards_and_prefilters():
    program = parse('pdx in MDCM.zd and sex != "1" and not pdx in MQY.zd')
    assert required_pdx_list(program) == ("MDCM", "zd") and required_sex(program) == 0
    assert required_sex(parse('pdx in MDCN.zd and sex == "2"')) == 2
    assert guards(parse("anyproc in ss and pdx in zd")) == ([1, 0], True)  # the principal's test first
    assert guards(parse("(odx in zd or anyproc in ss1) and anyproc in ss"))[1] is False
    assert required_pdx_list(parse("pdx in zd or pproc in ss")) is None


def _no_procedure(ins):
    return (False, True) if ins.op == Op.PROC_IN else (True, True)


@pytest.mark.parametrize(
    ("text", "held"),
    [
        (
            "(odx in zd and anyproc in a) or (anyproc in b and anyproc in a)",
            False,
        ),  # 2.0 step 12: both need one
        ("anyproc in a and pdx in zd", False),
        ("odx in zd or anyproc in a", True),
        ("not anyproc in a", True),  # no procedure at all: "not in a" holds
        ("not (pdx in zd or anyproc in a) and anyproc in b", False),
        ("true", True),
    ],
)
def test_may_hold_decides_in_three_valued_logic_what_no_procedure_rules_out(text, held):
    assert may_hold(parse(text), _no_procedure) is held


def test_may_hold_takes_one_answer_per_code():
    in_zd = np.array([True, False, False])  # three principals: the first in zd
    known = lambda ins: (in_zd, ~in_zd) if ins.sel == Sel.PDX else (True, True)  # noqa: E731
    assert may_hold(parse("pdx in zd or odx in zd1"), known).tolist() == [True, True, True]
    assert may_hold(parse("pdx in zd and odx in zd1"), known).tolist() == [True, False, False]
    assert may_hold(parse("not pdx in zd and odx in zd1"), known).tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pdx in", "expected name, found the end at position 7"),
        ("pdx of zd", "'pdx' cannot be followed by 'of' at position 5"),
        ("los_days > 3", "unknown predicate 'los_days' at position 1"),
        ("pdx in zd and", "expected name, found the end at position 14"),
        ("age_days <= x", "expected num, found 'x' at position 13"),
        ("pdx in zd # 1", "unexpected character '#' at position 11"),
        ("(pdx in zd", "expected \\), found the end at position 11"),
        ('sex == "M"', "sex is compared with a code"),
        ("", "empty condition"),
    ],
)
def test_errors_name_the_position(text, message):
    with pytest.raises(CodebookError, match=message):
        compile_condition(text, "adrg.csv: row 9 (ZZ1)", "ZZ1")


def _value(program, truth: dict) -> bool:
    stack = []
    for ins in program:
        if ins.op in (Op.AND, Op.OR):
            b, a = stack.pop(), stack.pop()
            stack.append((a and b) if ins.op == Op.AND else (a or b))
        elif ins.op == Op.NOT:
            stack.append(not stack.pop())
        else:
            stack.append(truth[(ins.op, ins.sel, ins.list, ins.arg, ins.const, ins.prefix)])
    return stack.pop()


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        (  # 2.0 MDCA's step: the shared procedure test first, run once
            "(odx in zd and anyproc in a) or (anyproc in b and anyproc in a)",
            ["ANYPROC_IN X.a", "ODX_IN X.zd", "ANYPROC_IN X.b", "OR", "AND"],
        ),
        (
            "(pdx in x and (odx in y or not anyproc in z)) or (pdx in x and age_years < 3) or (pdx in x and pproc in q)",
            [
                "PDX_IN X.x",
                "ODX_IN X.y",
                "ANYPROC_IN X.z",
                "NOT",
                "OR",
                "NUM LT 3",
                "OR",
                "PPROC_IN X.q",
                "OR",
                "AND",
            ],
        ),
        ("(pdx in x and odx in y) or (pdx in x)", ["PDX_IN X.x", "ODX_IN X.y", "AND", "PDX_IN X.x", "OR"]),
        ('(pdx in x and odx in y) or (odx in z and pdx in x and sex == "1")', None),
    ],
)
def test_factored_takes_shared_tests_out_of_an_or_and_keeps_its_value(text, shape):
    program = compile_condition(text, "t", "X")
    out = factored(program)
    if shape is not None:
        assert _shape_of(out) == shape
    keys = {
        (i.op, i.sel, i.list, i.arg, i.const, i.prefix)
        for i in program
        if i.op not in (Op.AND, Op.OR, Op.NOT)
    }
    for values in itertools.product([False, True], repeat=len(keys)):
        truth = dict(zip(keys, values, strict=True))
        assert _value(out, truth) == _value(program, truth)
