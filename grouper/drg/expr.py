"""The condition language of CHS-DRG codebooks (入组条件表达式): parser and postfix compiler.

ADRG conditions (``adrg.csv``), MDC gates (``mdc.csv``) and ambiguous-group rows (``qy.csv``) are written in one
small language (codebooks/chs-drg-2.0/RULES.md §4)::

    condition := or_expr            or_expr := and_expr {"or" and_expr}     and_expr := unary {"and" unary}
    unary     := "not" unary | "(" or_expr ")" | predicate
    predicate := "true" | DXSEL "in" LIST | DXSEL "startswith" STRING | PXSEL "in" LIST | PXSEL "valid"
               | NUMVAR CMP NUMBER | NUMVAR "in" INTERVAL | "sex" ("==" | "!=") STRING
               | "parts" "(" "anydx" "in" LIST ")" CMP INTEGER

Our own recursive-descent parser (no ``eval``, no expression library) turns a condition into a tree; a post-order
walk gives the postfix program the numba kernel runs on a stack of booleans (grouper/drg/_kernel.py). Every
instruction is (opcode, argument, selector, constant): the argument is a list id, a variable number or unused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from grouper.errors import CodebookError

__all__ = [
    "STEP_GATE",
    "STEP_ITEM",
    "STEP_PRE",
    "Cmp",
    "Instr",
    "Op",
    "Sel",
    "compile_condition",
    "conjuncts",
    "factored",
    "guards",
    "may_hold",
    "parse",
    "required_pdx_list",
    "required_sex",
    "stack_depth",
]


class Op(IntEnum):
    """Opcodes of a postfix program."""

    TRUE = 1  #: push true
    AND = 2  #: pop two, push both
    OR = 3  #: pop two, push either
    NOT = 4  #: negate the top
    DX_IN = 5  #: a diagnosis chosen by the selector is in dx list ``arg``
    PROC_IN = 6  #: a procedure chosen by the selector is in procedure list ``arg``
    NUM = 7  #: number variable ``arg`` compares (selector) with the constant; IEEE, NaN only ``!=``
    SEX = 8  #: the sex code compares (selector ``==`` / ``!=``) with the constant
    PARTS = 9  #: the distinct body parts of all diagnoses in dx list ``arg`` compare with the constant


class Sel(IntEnum):
    """Which codes a list predicate looks at (codebooks/chs-drg-2.0/RULES.md §4.2)."""

    PDX = 0  #: the principal diagnosis
    ODX = 1  #: some other diagnosis
    ANYDX = 2  #: some diagnosis, the principal included
    PPROC = 3  #: the principal procedure
    ANYPROC = 4  #: some procedure, the principal included


class Cmp(IntEnum):
    """Comparison selectors of ``NUM``, ``SEX`` and ``PARTS``."""

    LT = 0
    LE = 1
    GT = 2
    GE = 3
    EQ = 4
    NE = 5


#: Kinds of the steps of an MDC (codebooks/chs-drg-2.0/RULES.md §2): a pre-gate QY row (true → that QY group), the gate (false → next
#: MDC), an item (an ADRG or an in-MDC QY row; true → its result).
STEP_PRE, STEP_GATE, STEP_ITEM = 0, 1, 2

#: The number variables, in the order the kernel receives them.
NUMVARS = ("age_years", "age_days", "birth_weight_g")
_CMP = {"<": Cmp.LT, "<=": Cmp.LE, ">": Cmp.GT, ">=": Cmp.GE, "==": Cmp.EQ, "!=": Cmp.NE}
_DXSEL = {"pdx": Sel.PDX, "odx": Sel.ODX, "anydx": Sel.ANYDX}
_PXSEL = {"pproc": Sel.PPROC, "anyproc": Sel.ANYPROC}
_TOKEN = re.compile(
    r"\s*(?:(?P<str>\"[^\"]*\")|(?P<num>-?[0-9]+(?:\.[0-9]+)?)|(?P<op><=|>=|==|!=|<|>|[()\[\],])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[a-z][a-z0-9_]*)?))"
)


@dataclass(frozen=True)
class Instr:
    """One postfix instruction. ``list`` is a list reference ``(owner, name)`` until the codebook numbers it."""

    op: Op
    sel: int = 0
    list: tuple[str, str] | None = None
    arg: int = 0
    const: float = 0.0
    prefix: str = ""  #: for ``startswith``: the code prefix (the codebook turns it into a derived list)
    pos: int = -1  #: position of the predicate in the condition text (0-based), for error messages


class _Parser:
    def __init__(self, text: str, where: str, owner: str) -> None:
        self.text, self.where, self.owner = text, where, owner
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if not text[pos:].strip():
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                bad = pos + len(text[pos:]) - len(text[pos:].lstrip())
                self.fail(f"unexpected character {text[bad]!r}", bad)
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def fail(self, message: str, pos: int | None = None):
        if pos is None:
            pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        raise CodebookError(f"{self.where}: {message} at position {pos + 1} of {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        if self.i >= len(self.tokens):
            self.fail(f"expected {value or kind}, found the end")
        k, v, _ = self.tokens[self.i]
        if (kind and k != kind) or (value and v != value):
            self.fail(f"expected {value or kind}, found {v!r}")
        self.i += 1
        return v

    def condition(self) -> list[Instr]:
        out = self.or_expr()
        if self.i < len(self.tokens):
            self.fail(f"unexpected {self.peek()!r}")
        return out

    def or_expr(self) -> list[Instr]:
        out = self.and_expr()
        while self.peek() == "or":
            self.i += 1
            out = [*out, *self.and_expr(), Instr(Op.OR)]
        return out

    def and_expr(self) -> list[Instr]:
        out = self.unary()
        while self.peek() == "and":
            self.i += 1
            out = [*out, *self.unary(), Instr(Op.AND)]
        return out

    def unary(self) -> list[Instr]:
        word = self.peek()
        if word == "not":
            self.i += 1
            return [*self.unary(), Instr(Op.NOT)]
        if word == "(":
            self.i += 1
            out = self.or_expr()
            self.take("op", ")")
            return out
        return self.predicate()

    def list_ref(self) -> tuple[str, str]:
        name = self.take("name")
        owner, dot, rest = name.partition(".")
        if not dot:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                self.i -= 1
                self.fail(f"expected a list name, found {name!r}")
            return self.owner, name
        return owner, rest

    def number(self) -> float:
        return float(self.take("num"))

    def predicate(self) -> list[Instr]:
        start = self.i
        out = self.leaf()
        pos = self.tokens[start][2]
        return [replace(ins, pos=pos) for ins in out]

    def leaf(self) -> list[Instr]:
        start = self.i
        word = self.take("name")
        if word == "true":
            return [Instr(Op.TRUE)]
        if word in _DXSEL or word in _PXSEL:
            verb = self.take("name")
            if verb == "in":
                sel = _DXSEL.get(word, _PXSEL.get(word))
                return [Instr(Op.DX_IN if word in _DXSEL else Op.PROC_IN, sel, self.list_ref())]
            if verb == "startswith" and word in _DXSEL:
                return [Instr(Op.DX_IN, _DXSEL[word], prefix=self.take("str")[1:-1])]
            if verb == "valid" and word in _PXSEL:
                return [Instr(Op.PROC_IN, _PXSEL[word], ("", "valid"))]
            self.i -= 1
            self.fail(f"{word!r} cannot be followed by {verb!r}")
        if word in NUMVARS:
            var = NUMVARS.index(word)
            if self.peek() == "in":
                self.i += 1
                bracket = self.take("op")
                if bracket not in ("(", "["):
                    self.i -= 1
                    self.fail("expected '(' or '['")
                low_open = bracket == "("
                low = self.number()
                self.take("op", ",")
                high = None if self.peek() == "inf" else self.number()
                if high is None:
                    self.i += 1
                close = self.take("op")
                if close not in (")", "]"):
                    self.i -= 1
                    self.fail("expected ')' or ']'")
                out = [Instr(Op.NUM, Cmp.GT if low_open else Cmp.GE, arg=var, const=low)]
                if high is not None:
                    cmp = Cmp.LT if close == ")" else Cmp.LE
                    out += [Instr(Op.NUM, cmp, arg=var, const=high), Instr(Op.AND)]
                return out
            cmp = self.take("op")
            if cmp not in _CMP:
                self.i -= 1
                self.fail(f"expected a comparison, found {cmp!r}")
            return [Instr(Op.NUM, _CMP[cmp], arg=var, const=self.number())]
        if word == "sex":
            cmp = self.take("op")
            if cmp not in ("==", "!="):
                self.i -= 1
                self.fail(f"sex compares with == or != only, found {cmp!r}")
            value = self.take("str")[1:-1]
            if not value.isdigit():
                self.i -= 1
                self.fail(f'sex is compared with a code such as "1", found {value!r}')
            return [Instr(Op.SEX, _CMP[cmp], const=float(value))]
        if word == "parts":
            self.take("op", "(")
            self.take("name", "anydx")
            self.take("name", "in")
            ref = self.list_ref()
            self.take("op", ")")
            cmp = self.take("op")
            if cmp not in _CMP:
                self.i -= 1
                self.fail(f"expected a comparison, found {cmp!r}")
            return [Instr(Op.PARTS, _CMP[cmp], ref, const=self.number())]
        self.i = start
        self.fail(f"unknown predicate {word!r}")


def compile_condition(text: str, where: str, owner: str = "") -> list[Instr]:
    """The postfix program of one condition; a syntax error or unknown predicate raises ``CodebookError``.

    Parameters
    ----------
    text : the condition, e.g. ``"pdx in zd and pproc in ss"``
    where : ``"<file>: row <n>"``, named in errors
    owner : the owner of bare list names (the ADRG or QY code of the row)

    Examples
    --------
    >>> [i.op.name for i in compile_condition("(odx in zd or anyproc in ss1) and anyproc in ss", "x", "AH2")]
    ['DX_IN', 'PROC_IN', 'OR', 'PROC_IN', 'AND']
    """
    if not text.strip():
        raise CodebookError(f"{where}: empty condition")
    return _Parser(text, where, owner).condition()


def parse(text: str) -> list[Instr]:
    """Shorthand of ``compile_condition`` for documentation and tests."""
    return compile_condition(text, "<condition>")


def factored(program: list[Instr]) -> list[Instr]:
    """The same condition with the tests every branch of an ``or`` shares taken out in front:
    ``(a and x) or (b and x)`` runs as ``x and (a or b)``. A shared test then guards the ``or`` (it is tried first,
    and the prefilter sees it), and it runs once instead of once per branch. Equal for every case: the tests
    have no side effects."""

    def key(ins: Instr) -> tuple:
        return (ins.op, ins.sel, ins.list, ins.arg, ins.const, ins.prefix)

    stack: list = []
    for ins in program:  # a tree: a leaf is an Instr, a node (op, children) with and/or chains made n-ary
        if ins.op in (Op.AND, Op.OR):
            right, left = stack.pop(), stack.pop()
            parts = [c for side in (left, right) for c in (side[1] if _is(side, ins.op) else [side])]
            stack.append(_shared_out(ins.op, parts, key))
        elif ins.op == Op.NOT:
            stack.append((Op.NOT, [stack.pop()]))
        else:
            stack.append(ins)
    return _postfix(stack[-1])


def _is(node, op: Op) -> bool:
    return isinstance(node, tuple) and node[0] == op


def _shared_out(op: Op, parts: list, key):
    """An ``and``/``or`` node of ``parts``; an ``or`` whose branches are all ``and`` chains sharing leaf tests
    becomes ``and`` of those tests and the ``or`` of what is left of each branch."""
    if op != Op.OR or not all(_is(p, Op.AND) for p in parts):
        return (op, parts)
    leaves = [{key(c): c for c in p[1] if isinstance(c, Instr)} for p in parts]
    common = [k for k in leaves[0] if all(k in found for found in leaves[1:])]
    if not common:
        return (op, parts)
    rests = [[c for c in p[1] if not (isinstance(c, Instr) and key(c) in common)] for p in parts]
    if any(not rest for rest in rests):  # a branch that is the shared tests alone: the or holds when they do
        return (Op.AND, [leaves[0][k] for k in common])
    branches = [rest[0] if len(rest) == 1 else (Op.AND, rest) for rest in rests]
    return (Op.AND, [*(leaves[0][k] for k in common), (Op.OR, branches)])


def _postfix(node) -> list[Instr]:
    if isinstance(node, Instr):
        return [node]
    op, children = node
    out = _postfix(children[0])
    if op == Op.NOT:
        return [*out, Instr(Op.NOT)]
    for child in children[1:]:
        out += [*_postfix(child), Instr(op)]
    return out


def stack_depth(program: list[Instr]) -> int:
    """Largest number of values on the stack while the program runs."""
    depth = top = 0
    for ins in program:
        top += 1 if ins.op not in (Op.AND, Op.OR, Op.NOT) else (-1 if ins.op != Op.NOT else 0)
        depth = max(depth, top)
    return depth


def conjuncts(program: list[Instr]) -> list[int]:
    """Positions of the single-instruction operands of the program's top-level ``and`` chain (its guards).

    A leaf program is its own guard. If any guard is false, the program is false.
    """

    def start(end: int) -> int:  # first index of the sub-program that ends at ``end``
        need, i = 1, end
        while need:
            op = program[i].op
            need += (2 if op in (Op.AND, Op.OR) else 1 if op == Op.NOT else 0) - 1
            i -= 1
        return i + 1

    out, todo = [], [(0, len(program) - 1)]
    while todo:
        lo, hi = todo.pop()
        if program[hi].op == Op.AND:
            mid = start(hi - 1)
            todo += [(mid, hi - 1), (lo, mid - 1)]
        elif lo == hi:
            out.append(hi)
    return out


def guards(program: list[Instr]) -> tuple[list[int], bool]:
    """The top-level conjuncts, cheapest first, and whether they are the whole program (an ``and`` of leaves)."""
    found = conjuncts(program)

    def cost(k: int) -> int:
        ins = program[k]
        if ins.op == Op.PARTS:
            return 2
        return int(ins.op in (Op.DX_IN, Op.PROC_IN) and ins.sel not in (Sel.PDX, Sel.PPROC))

    pure = all(ins.op == Op.AND for k, ins in enumerate(program) if k not in found)
    return sorted(found, key=cost), pure


def may_hold(program: list[Instr], leaf) -> np.ndarray | bool:
    """Whether ``program`` may be true, in three-valued (Kleene) logic, given what is known of its leaves.

    ``leaf(ins)`` gives ``(may_be_true, may_be_false)`` for a leaf instruction: ``(True, True)`` when nothing is
    known, bool arrays to decide many cases at once (e.g. one per principal code).
    """
    stack = []
    for ins in program:
        if ins.op in (Op.AND, Op.OR):
            (t2, f2), (t1, f1) = stack.pop(), stack.pop()
            stack.append((t1 & t2, f1 | f2) if ins.op == Op.AND else (t1 | t2, f1 & f2))
        elif ins.op == Op.NOT:
            t, f = stack.pop()
            stack.append((f, t))
        else:
            stack.append((True, False) if ins.op == Op.TRUE else leaf(ins))
    return stack[-1][0]


def required_pdx_list(program: list[Instr]) -> tuple[str, str] | None:
    """A list the principal must be in for the program to be true (a top-level ``pdx in L and …``), if any."""
    for k in conjuncts(program):
        ins = program[k]
        if ins.op == Op.DX_IN and ins.sel == Sel.PDX and not ins.prefix:
            return ins.list
    return None


def required_sex(program: list[Instr]) -> int:
    """The sex code a top-level ``sex == "n"`` conjunct requires, else 0."""
    for k in conjuncts(program):
        ins = program[k]
        if ins.op == Op.SEX and ins.sel == Cmp.EQ:
            return int(ins.const)
    return 0
