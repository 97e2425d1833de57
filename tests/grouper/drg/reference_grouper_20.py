"""Plain per-record CHS-DRG 2.0 reference grouper (参照分组器), test-only.

Written only from ``codebooks/chs-drg-2.0/RULES.md`` (§1.3 numbers, §1.4 checks, §2 algorithm, §3 gates and QY,
§4 the condition language, §6 severity) and the CSV tables, without looking at ``grouper/drg``: conditions are
parsed here into Python closures by a separate little parser (no postfix, no numba), so that
``test_reference_crosscheck_20.py`` is an independent check of the expression kernel. Oracle mode: codes and sex
are taken verbatim, numbers as strings read with ECMAScript ToNumber. Speed does not matter much.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

__all__ = ["UNGROUPED", "Record", "ReferenceGrouper20", "to_number"]

UNGROUPED = ("0000", "00", "0000")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Infinity)")


def to_number(text: str) -> float:
    """ECMAScript ToNumber of a string (codebooks/chs-drg-2.0/RULES.md §1.3): blank is 0, a decimal literal its value, else NaN."""
    s = text.strip()
    if not s:
        return 0.0
    if _DECIMAL.fullmatch(s):
        return float(s.replace("Infinity", "inf"))
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
        return float(int(s, 16))
    return math.nan


class Record:
    """One record as the oracle sees it: diagnosis and procedure lists, raw sex, numbers."""

    def __init__(self, sex: str, age_years: str, age_days: str, weight: str, dx: list[str], procs: list[str]):
        self.sex = sex
        self.nums = {"age_years": to_number(age_years), "age_days": to_number(age_days)}
        self.nums["birth_weight_g"] = to_number(weight)
        self.dx = [] if all(d == "" for d in dx) else dx  # both principal and others empty → empty list
        self.procs = procs


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


_TOKENS = re.compile(r'\s*("[^"]*"|-?\d+(?:\.\d+)?|<=|>=|==|!=|<|>|[()\[\],]|[A-Za-z_][\w]*(?:\.[a-z]\w*)?)')
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}

Predicate = Callable[[Record], bool]


class _Conditions:
    """Recursive-descent parser of codebooks/chs-drg-2.0/RULES.md §4.1 that returns a closure per condition."""

    def __init__(self, grouper: ReferenceGrouper20) -> None:
        self.g = grouper

    def parse(self, text: str, owner: str) -> Predicate:
        self.tokens, self.i, self.owner = _TOKENS.findall(text), 0, owner
        assert "".join(self.tokens) == re.sub(r"\s+", "", text), text
        out = self.or_()
        assert self.i == len(self.tokens), text
        return out

    def next(self) -> str:
        self.i += 1
        return self.tokens[self.i - 1]

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def or_(self) -> Predicate:
        terms = [self.and_()]
        while self.peek() == "or":
            self.next()
            terms.append(self.and_())
        return terms[0] if len(terms) == 1 else lambda r: any(t(r) for t in terms)

    def and_(self) -> Predicate:
        terms = [self.unary()]
        while self.peek() == "and":
            self.next()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else lambda r: all(t(r) for t in terms)

    def unary(self) -> Predicate:
        if self.peek() == "not":
            self.next()
            inner = self.unary()
            return lambda r: not inner(r)
        if self.peek() == "(":
            self.next()
            inner = self.or_()
            assert self.next() == ")"
            return inner
        return self.predicate()

    def list_(self) -> set[str]:
        name = self.next()
        owner, _, list_name = name.rpartition(".")
        return self.g.codes_of(owner or self.owner, list_name)

    def predicate(self) -> Predicate:
        word = self.next()
        if word == "true":
            return lambda r: True
        if word in ("pdx", "odx", "anydx"):
            pick = {"pdx": lambda r: r.dx[:1], "odx": lambda r: r.dx[1:], "anydx": lambda r: r.dx}[word]
            verb = self.next()
            if verb == "startswith":
                prefix = self.next()[1:-1]
                return lambda r: any(d.startswith(prefix) for d in pick(r))
            assert verb == "in"
            codes = self.list_()
            return lambda r: any(d in codes for d in pick(r))
        if word in ("pproc", "anyproc"):
            pick = (lambda r: r.procs[:1]) if word == "pproc" else (lambda r: r.procs)
            verb = self.next()
            codes = self.g.proc_valid if verb == "valid" else self.list_()
            return lambda r: any(p in codes for p in pick(r))
        if word in ("age_years", "age_days", "birth_weight_g"):
            if self.peek() == "in":
                self.next()
                low_open = self.next() == "("
                low = float(self.next())
                assert self.next() == ","
                high = self.next()
                high = math.inf if high == "inf" else float(high)
                high_open = self.next() == ")"
                return lambda r: (
                    (r.nums[word] > low if low_open else r.nums[word] >= low)
                    and (r.nums[word] < high if high_open else r.nums[word] <= high)
                )
            op, value = _OPS[self.next()], float(self.next())
            return lambda r: op(r.nums[word], value)
        if word == "sex":
            op, value = _OPS[self.next()], self.next()[1:-1]
            return lambda r: op(r.sex, value)
        if word == "parts":
            assert [self.next(), self.next(), self.next()] == ["(", "anydx", "in"]
            codes = self.list_()
            assert self.next() == ")"
            op, value = _OPS[self.next()], float(self.next())
            return lambda r: op(len({self.g.part[d] for d in r.dx if d in codes and d in self.g.part}), value)
        raise ValueError(f"unknown predicate {word}")


class ReferenceGrouper20:
    """CHS-DRG 2.0 grouping of one record at a time (codebooks/chs-drg-2.0/RULES.md §1.4, §2, §6)."""

    def __init__(self, folder: Path) -> None:
        self.lists: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.part: dict[str, str] = {}
        for row in _rows(folder, "mdc_dx.csv"):
            self.lists[row["mdc"], "zd"].add(row["code"])
            if row["part"]:
                self.part[row["code"]] = row["part"]
        for row in _rows(folder, "adrg_codes.csv"):
            self.lists[row["adrg"], row["list"]].add(row["code"])
        self.proc_valid = {row["code"] for row in _rows(folder, "proc_valid.csv")}
        self.mcc = {row["code"]: row["table"] for row in _rows(folder, "mcc.csv")}
        self.cc = {row["code"]: row["table"] for row in _rows(folder, "cc.csv")}
        self.cce = {row["principal_code"]: row["table"] for row in _rows(folder, "cc_exclusion.csv")}
        self.drgs: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in sorted(_rows(folder, "drg.csv"), key=lambda r: int(r["seq"])):
            self.drgs[row["adrg"]].append(row)
        parser = _Conditions(self)
        self.mdcs = sorted(_rows(folder, "mdc.csv"), key=lambda r: int(r["seq"]))
        self.gate = {m["mdc"]: parser.parse(m["gate"], m["mdc"]) for m in self.mdcs}
        adrgs = sorted(_rows(folder, "adrg.csv"), key=lambda r: int(r["seq"]))
        qys = sorted(_rows(folder, "qy.csv"), key=lambda r: int(r["seq"]))
        self.pre: dict[str, list[tuple[str, Predicate]]] = defaultdict(list)
        self.program: dict[str, list[tuple[str, bool, Predicate]]] = defaultdict(list)
        for m in self.mdcs:
            mdc = m["mdc"]
            in_mdc = [q for q in qys if q["mdc"] == mdc and q["stage"] == "in_mdc"]
            items = [
                (q["qy_drg"], True, parser.parse(q["condition"], q["qy_drg"]))
                for q in in_mdc
                if not q["after_adrg"]
            ]
            for a in (a for a in adrgs if a["mdc"] == mdc):
                items.append((a["adrg"], False, parser.parse(a["condition"], a["adrg"])))
                items += [
                    (q["qy_drg"], True, parser.parse(q["condition"], q["qy_drg"]))
                    for q in in_mdc
                    if q["after_adrg"] == a["adrg"]
                ]
            self.program[mdc] = items
            self.pre[mdc] = [
                (q["qy_drg"], parser.parse(q["condition"], q["qy_drg"]))
                for q in qys
                if q["mdc"] == mdc and q["stage"] == "pre_gate"
            ]

    def codes_of(self, owner: str, name: str) -> set[str]:
        if (owner, name) not in self.lists:
            raise KeyError(f"unknown list {owner}.{name}")
        return self.lists[owner, name]

    def group(self, record: Record) -> tuple[tuple[str, str, str], str]:
        """((mdc, adrg, drg), status) of one record; status as the conformance files write it."""
        if record.sex == "" or not record.dx or record.sex not in ("1", "2"):
            return UNGROUPED, "信息校验不通过"
        for m in self.mdcs:
            mdc = m["mdc"]
            for qy, condition in self.pre[mdc]:
                if condition(record):
                    return (f"MDC{qy[0]}", "QY", qy), "歧义病案"
            if not self.gate[mdc](record):
                continue
            for code, is_qy, condition in self.program[mdc]:
                if condition(record):
                    if is_qy:
                        return (f"MDC{code[0]}", "QY", code), "歧义病案"
                    return (mdc, code, self.drg(code, record.dx)), "分组成功"
        return UNGROUPED, "无法入组"

    def severity(self, dx: list[str]) -> tuple[bool, bool]:
        """(has_mcc, has_cc) over all diagnoses, the principal included (codebooks/chs-drg-2.0/RULES.md §6.2)."""
        table = self.cce.get(dx[0]) if dx else None
        has_mcc = any(d in self.mcc and (table is None or self.mcc[d] != table) for d in dx)
        has_cc = any(d in self.cc and (table is None or self.cc[d] != table) for d in dx)
        return has_mcc, has_cc

    def drg(self, adrg: str, dx: list[str]) -> str:
        has_mcc, has_cc = self.severity(dx)
        two = len(dx) >= 2
        tests = {"MCC": two and has_mcc, "MCC_OR_CC": two and (has_mcc or has_cc), "ALWAYS": True}
        return next(row["drg"] for row in self.drgs[adrg] if tests[row["rule"]])
