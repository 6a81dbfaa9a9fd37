"""A safe, exact calculator for the model: the ``ast`` of the expression is walked, never ``eval``.

Numbers stay exact as long as they can: integers are Python ints, decimal literals become
:class:`fractions.Fraction` (so ``0.1 + 0.2`` is ``0.3``), and only functions with irrational
results (``sqrt(2)``, ``sin``, ``log``...) or fractional powers fall back to floats, shown with at
most 15 significant digits so no float noise reaches the model.

Everything is bounded *before* it is computed: the text length and bracket nesting are checked
before ``ast.parse`` (which can itself recurse or allocate without limit), the tree's size and
depth before evaluation, the size of ``a ** b`` and ``factorial(n)`` from logarithms before the
power or factorial is taken, every intermediate result's size after each step, and a deadline
is checked at every node. Hostile input (``9**9**9``, ``factorial(10**7)``, 100,000 nested
parentheses, a megabyte of text) gets a clear error in well under a millisecond or two.
"""

from __future__ import annotations

import ast
import math
import re
import time
from collections.abc import Callable
from decimal import Context, Decimal, Inexact
from fractions import Fraction
from typing import Any, TypeAlias

from parley.core.tools.registry import Tool, ToolError, tool

__all__ = ["CalcError", "calculator_tool", "evaluate"]

Number: TypeAlias = int | Fraction | float

MAX_EXPRESSION_CHARS = 5_000
"""Longer expressions are refused before parsing (ast.parse of huge text is slow and deep)."""
MAX_NESTING = 50
"""Deepest bracket nesting accepted (checked by a scan before parsing)."""
MAX_UNARY_RUN = 20
"""Longest run of unary signs (``- - - -1``) accepted; each one is a level of the parser."""
MAX_DEPTH = 100
"""Deepest expression tree the evaluator recurses into (left-leaning sums do not count)."""
MAX_NODES = 20_000
"""Most syntax-tree nodes accepted."""
MAX_DIGITS = 10_000
"""Largest exact number (integer, numerator or denominator), in decimal digits."""
MAX_BITS = math.ceil(MAX_DIGITS / math.log10(2))
MAX_ROUND_DIGITS = 1_000
"""Largest ``ndigits`` accepted by ``round``."""
TIME_LIMIT_S = 1.0
"""Evaluation stops with an error past this (a backstop: the size bounds come first)."""
EXACT_DISPLAY_DIGITS = 40
"""A terminating decimal with at most this many significant digits is shown exactly."""
DISPLAY_DIGITS = 15
"""Significant digits shown for inexact results."""


def _max_factorial() -> int:
    n = 1
    while math.lgamma(n + 2) / math.log(10) < MAX_DIGITS:
        n += 1
    return n


MAX_FACTORIAL = _max_factorial()
"""Largest ``n`` whose factorial has at most ``MAX_DIGITS`` digits."""


class CalcError(ToolError):
    """The expression is invalid, unsupported, or exceeds a bound."""

    default_message = "The expression could not be evaluated."


# ---------------------------------------------------------------- public API
def evaluate(expression: str, *, time_limit_s: float = TIME_LIMIT_S) -> str:
    """Evaluate an arithmetic expression and format the result.

    Args:
        expression: Python-style arithmetic, e.g. ``"sqrt(2) * (3.5 + 1) ** 2"``.
        time_limit_s: Evaluation deadline (the size bounds usually stop hostile input first).

    Returns:
        The result: an exact integer or decimal where possible, else at most 15 significant
        digits; ``True``/``False`` for comparisons.

    Raises:
        CalcError: With a one-line reason for anything invalid, unsupported or too large.
    """
    tree, text = _parse(expression)
    evaluator = _Evaluator(text, time.perf_counter() + time_limit_s)
    try:
        value = evaluator.eval(tree.body, 1)
    except CalcError:
        raise
    except ZeroDivisionError:
        raise CalcError("Division by zero.") from None
    except OverflowError:
        raise CalcError("A number is too large for floating point.") from None
    except RecursionError:
        raise CalcError("The expression is too deeply nested.") from None
    except (ValueError, ArithmeticError, TypeError) as exc:
        raise CalcError(f"Cannot compute this: {exc}.") from None
    return format_number(value)


@tool(name="calculator", timeout_s=5.0, max_output_chars=12_000)
def calculator_function(expression: str) -> str:
    """Evaluate an arithmetic expression exactly; use it for any arithmetic instead of guessing.

    Supports + - * / // % ** (power), parentheses, comparisons (< <= > >= == !=, chained),
    functions sqrt, log(x) or log(x, base), log10, log2, exp, sin, cos, tan, asin, acos, atan,
    atan2, sinh, cosh, tanh, degrees, radians, hypot, floor, ceil, abs, round(x) or round(x, n),
    min, max, factorial, and the constants pi, e, tau. Decimal input gives exact decimal
    results (0.1 + 0.2 = 0.3); integers of any size up to 10,000 digits stay exact. Angles are
    in radians. Use ** for powers (^ is not supported).

    Args:
        expression: The expression, e.g. "(1299.99 * 3) * 1.2" or "log(2, 10) ** 2".
    """
    return evaluate(expression)


calculator_tool: Tool = calculator_function
"""The calculator as a registry :class:`~parley.core.tools.registry.Tool`."""


# ---------------------------------------------------------------- parsing, with guards first
_UNARY_RUN = re.compile(rf"(?:[-+~]\s*){{{MAX_UNARY_RUN + 1},}}")
_REPLACEMENTS = str.maketrans(
    {"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "\n": " ", "\r": " ", "\t": " "}
)


def _parse(expression: str) -> tuple[ast.Expression, str]:
    """Guard, normalise and parse; returns the tree and the text it was parsed from."""
    if not isinstance(expression, str):
        raise CalcError("The expression must be text.")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalcError(
            f"The expression is too long ({len(expression):,} characters; "
            f"the limit is {MAX_EXPRESSION_CHARS:,})."
        )
    text = expression.translate(_REPLACEMENTS).strip()
    # "2 + 2 =" is a common way to ask.
    text = text.removesuffix("=").strip()
    if not text:
        raise CalcError("The expression is empty.")
    if "\x00" in text:
        raise CalcError("The expression contains a NUL character.")
    depth = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise CalcError(f"Brackets are nested too deeply (limit {MAX_NESTING}).")
        elif ch in ")]}":
            depth -= 1
    if _UNARY_RUN.search(text):
        raise CalcError(f"Too many signs in a row (limit {MAX_UNARY_RUN}).")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalcError(f"Not a valid expression: {exc.msg[:120]}.") from None
    except (ValueError, MemoryError, RecursionError):
        raise CalcError("The expression is too complex to parse.") from None
    _check_shape(tree)
    return tree, text


def _check_shape(tree: ast.Expression) -> None:
    """Count nodes and measure depth without recursion (the tree may be deep)."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise CalcError(f"The expression is too large (more than {MAX_NODES:,} parts).")
        if depth > MAX_DEPTH:
            raise CalcError(f"The expression is nested too deeply (limit {MAX_DEPTH}).")
        if isinstance(node, ast.Constant | ast.Name):
            continue  # leaves: the commonest nodes, skip the generic child walk
        if isinstance(node, ast.BinOp):
            # The evaluator walks a left-leaning chain (1 + 2 + 3 + ...) in a loop.
            stack.append((node.left, depth))
            stack.append((node.right, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


# ---------------------------------------------------------------- evaluation
_CONSTANTS: dict[str, float] = {"pi": math.pi, "π": math.pi, "e": math.e, "tau": math.tau}

_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "Attribute access (a.b) is not allowed",
    ast.Subscript: "Indexing (a[b]) is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "Comprehensions are not allowed",
    ast.SetComp: "Comprehensions are not allowed",
    ast.DictComp: "Comprehensions are not allowed",
    ast.GeneratorExp: "Comprehensions are not allowed",
    ast.List: "Lists are not supported",
    ast.Tuple: "Tuples are not supported (one expression at a time)",
    ast.Set: "Sets are not supported",
    ast.Dict: "Dictionaries are not supported",
    ast.JoinedStr: "Strings are not supported",
    ast.IfExp: "Conditional expressions are not supported",
    ast.NamedExpr: "Assignments are not allowed",
    ast.BoolOp: "Logical operators (and, or) are not supported",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Starred: "Unpacking (*x) is not allowed",
}


class _Evaluator:
    def __init__(self, source: str, deadline: float) -> None:
        # UTF-8 lines: ast offsets are byte offsets (ast.get_source_segment re-splits the whole
        # source on every call, which made 1,000 literals take a second).
        self.lines = [line.encode() for line in source.splitlines(keepends=True)]
        self.deadline = deadline

    def eval(self, node: ast.AST, depth: int) -> Number:
        if time.perf_counter() > self.deadline:
            raise CalcError("The calculation took too long and was stopped.")
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.BinOp):
            # Iterate down the left spine so long sums do not recurse.
            chain: list[tuple[ast.operator, ast.expr]] = []
            left: ast.expr = node
            while isinstance(left, ast.BinOp):
                chain.append((left.op, left.right))
                left = left.left
            acc = self.eval(left, depth + 1)
            for op, right in reversed(chain):
                acc = _binop(op, acc, self.eval(right, depth + 1))
            return acc
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return _check(-_arith(self.eval(node.operand, depth + 1)))
            if isinstance(node.op, ast.UAdd):
                return _arith(self.eval(node.operand, depth + 1))
            if isinstance(node.op, ast.Not):
                raise CalcError("Logical operators (not) are not supported.")
            raise CalcError("Bitwise operators are not supported.")
        if isinstance(node, ast.Compare):
            return self._compare(node, depth)
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            if node.id in _FUNCTIONS:
                raise CalcError(f"{node.id} is a function: call it, e.g. {node.id}(x).")
            raise CalcError(f"Unknown name {node.id!r}; only the constants pi, e and tau exist.")
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        for kind, message in _REFUSED.items():
            if isinstance(node, kind):
                raise CalcError(message + ".")
        raise CalcError(f"{type(node).__name__} is not supported in an expression.")

    def _constant(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise CalcError("Only numbers are supported, not True/False/None.")
        if isinstance(value, int):
            return _check(value)
        if isinstance(value, float):
            # Read the literal's own text: 0.1 is exactly 1/10, not the nearest binary float.
            return _decimal_literal(self._segment(node).replace("_", "") or repr(value))
        if isinstance(value, complex):
            raise CalcError("Complex numbers are not supported.")
        if isinstance(value, str | bytes):
            raise CalcError("Strings are not supported.")
        raise CalcError("Only numbers are supported.")

    def _segment(self, node: ast.expr) -> str:
        if node.end_lineno != node.lineno or node.end_col_offset is None:
            return ""
        line = self.lines[node.lineno - 1]
        return line[node.col_offset : node.end_col_offset].decode()

    def _compare(self, node: ast.Compare, depth: int) -> Number:
        left = self.eval(node.left, depth + 1)
        result = True
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator, depth + 1)
            compare = _COMPARISONS.get(type(op))
            if compare is None:
                raise CalcError("Only the comparisons < <= > >= == != are supported.")
            result = result and compare(_arith(left), _arith(right))
            left = right
        return result  # a bool (an int subclass), formatted as True/False

    def _call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name):
            raise CalcError("Only the calculator's own functions can be called.")
        name = node.func.id
        entry = _FUNCTIONS.get(name)
        if entry is None:
            raise CalcError(f"Unknown function {name!r}.")
        if node.keywords:
            raise CalcError(f"{name}() takes no keyword arguments.")
        low, high, impl = entry
        count = len(node.args)
        if count < low or (high is not None and count > high):
            wanted = str(low) if low == high else f"{low} to {high}" if high else f"{low} or more"
            raise CalcError(f"{name}() takes {wanted} argument(s), got {count}.")
        args = [_arith(self.eval(a, depth + 1)) for a in node.args]
        return _check(impl(*args))


# ---------------------------------------------------------------- numbers
def _decimal_literal(text: str) -> Number:
    try:
        dec = Decimal(text)
    except ArithmeticError:
        raise CalcError(f"Not a number: {text!r}.") from None
    if not dec.is_finite():
        raise CalcError("The number is not finite.")
    if abs(dec.adjusted()) > MAX_DIGITS:
        raise CalcError(f"The number {text} is too large (limit {MAX_DIGITS:,} digits).")
    return _check(Fraction(dec))


def _arith(x: Number) -> Number:
    # Comparisons give bools; in arithmetic they are the ints 0 and 1.
    return int(x) if isinstance(x, bool) else x


def _bits(x: int) -> int:
    return abs(x).bit_length()


def _check(x: Any) -> Number:
    """Normalise a result and enforce the size bounds."""
    if isinstance(x, bool):
        return x
    if isinstance(x, int):
        if x.bit_length() > MAX_BITS:
            raise CalcError(f"The result is too large (more than {MAX_DIGITS:,} digits).")
        return x
    if isinstance(x, Fraction):
        if x.denominator == 1:
            return _check(x.numerator)
        if _bits(x.numerator) > MAX_BITS or x.denominator.bit_length() > MAX_BITS:
            raise CalcError(f"The result is too precise (more than {MAX_DIGITS:,} digits).")
        return x
    if isinstance(x, float):
        if math.isnan(x):
            raise CalcError("The result is not a number.")
        if math.isinf(x):
            raise CalcError("The result is too large for floating point.")
        return x
    raise CalcError("The result is not a real number.")


def _to_float(x: Number) -> float:
    try:
        return float(x)
    except OverflowError:
        raise CalcError("A number is too large for floating point.") from None


def _exact(x: Number) -> bool:
    return isinstance(x, int | Fraction)


def _binop(op: ast.operator, a: Number, b: Number) -> Number:
    a, b = _arith(a), _arith(b)
    if isinstance(op, ast.Add):
        return _check(a + b if _exact(a) and _exact(b) else _to_float(a) + _to_float(b))
    if isinstance(op, ast.Sub):
        return _check(a - b if _exact(a) and _exact(b) else _to_float(a) - _to_float(b))
    if isinstance(op, ast.Mult):
        if _exact(a) and _exact(b):
            return _check(a * b)
        return _check(_to_float(a) * _to_float(b))
    if isinstance(op, ast.Div | ast.FloorDiv | ast.Mod):
        if b == 0:
            raise CalcError("Division by zero.")
        if _exact(a) and _exact(b):
            if isinstance(op, ast.Div):
                return _check(Fraction(a) / Fraction(b))
            return _check(a // b if isinstance(op, ast.FloorDiv) else a % b)
        fa, fb = _to_float(a), _to_float(b)
        if isinstance(op, ast.Div):
            return _check(fa / fb)
        return _check(fa // fb if isinstance(op, ast.FloorDiv) else fa % fb)
    if isinstance(op, ast.Pow):
        return _power(a, b)
    if isinstance(op, ast.BitXor):
        raise CalcError("^ is not supported; use ** for powers.")
    if isinstance(op, ast.MatMult):
        raise CalcError("@ is not supported.")
    raise CalcError("Bitwise operators are not supported.")


def _power(a: Number, b: Number) -> Number:
    if isinstance(b, int):
        if not _exact(a):
            try:
                return _check(math.pow(_to_float(a), b))
            except ValueError:
                raise CalcError("This power has no real result.") from None
        if a == 0:
            if b < 0:
                raise CalcError("Division by zero (0 to a negative power).")
            return 1 if b == 0 else 0
        if a == 1:
            return 1
        if a == -1:
            return 1 if b % 2 == 0 else -1
        frac = Fraction(a)
        # Size estimate before computing: |b| * log2 of the numerator/denominator, in bits.
        size = max(_bits(frac.numerator), frac.denominator.bit_length()) - 1
        estimate = abs(b) * max(size, 1)
        if estimate > MAX_BITS:
            digits = (
                f"about {estimate * math.log10(2):,.0f}"
                if estimate < 10**18
                else f"far more than {MAX_DIGITS:,}"
            )
            raise CalcError(
                f"The result would have {digits} digits (limit {MAX_DIGITS:,}); "
                "use logarithms or floats for numbers this large."
            )
        return _check(frac**b)
    # A fractional exponent: the result is irrational in general, so compute in floating point.
    fa, fb = _to_float(a), _to_float(b)
    if fa < 0:
        raise CalcError("A negative number to a fractional power has no real result.")
    if fa == 0 and fb < 0:
        raise CalcError("Division by zero (0 to a negative power).")
    return _check(math.pow(fa, fb))


_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: lambda x, y: x < y,
    ast.LtE: lambda x, y: x <= y,
    ast.Gt: lambda x, y: x > y,
    ast.GtE: lambda x, y: x >= y,
    ast.Eq: lambda x, y: x == y,
    ast.NotEq: lambda x, y: x != y,
}


# ---------------------------------------------------------------- functions
def _as_int(x: Number, what: str) -> int:
    if isinstance(x, int):
        return x
    if isinstance(x, Fraction) and x.denominator == 1:
        return x.numerator
    if isinstance(x, float) and x.is_integer():
        return int(x)
    raise CalcError(f"{what} must be a whole number.")


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise CalcError("sqrt of a negative number has no real result.")
    if _exact(x):
        frac = Fraction(x)
        num, den = math.isqrt(frac.numerator), math.isqrt(frac.denominator)
        if num * num == frac.numerator and den * den == frac.denominator:
            return Fraction(num, den)
        if frac.numerator.bit_length() > 1000 or frac.denominator.bit_length() > 1000:
            return math.exp((math.log(frac.numerator) - math.log(frac.denominator)) / 2)
    return math.sqrt(_to_float(x))


def _ln(x: Number) -> float:
    if x <= 0:
        raise CalcError("The logarithm is only defined for positive numbers.")
    if isinstance(x, Fraction):
        # math.log takes ints of any size; a Fraction's float could overflow.
        return math.log(x.numerator) - math.log(x.denominator)
    return math.log(x)


def _log(x: Number, base: Number | None = None) -> float:
    if base is None:
        return _ln(x)
    if base <= 0 or base == 1:
        raise CalcError("The base of a logarithm must be positive and not 1.")
    return _ln(x) / _ln(base)


def _log_base(x: Number, fn: Callable[[Any], float], base: int) -> float:
    if x <= 0:
        raise CalcError("The logarithm is only defined for positive numbers.")
    # math.log10/log2 are exact on powers of the base and take ints of any size.
    if isinstance(x, Fraction):
        return _ln(x) / math.log(base)
    return fn(x)


def _factorial(x: Number) -> int:
    n = _as_int(x, "factorial's argument")
    if n < 0:
        raise CalcError("factorial is only defined for non-negative whole numbers.")
    if n > MAX_FACTORIAL:
        raise CalcError(
            f"factorial({n if n < 10**12 else 'n'}) is too large "
            f"(limit factorial({MAX_FACTORIAL:,}), about {MAX_DIGITS:,} digits)."
        )
    return math.factorial(n)


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return _check(round(x))
    n = _as_int(ndigits, "round's number of digits")
    if abs(n) > MAX_ROUND_DIGITS:
        raise CalcError(f"round's number of digits must be at most {MAX_ROUND_DIGITS:,}.")
    return _check(round(x, n))


def _floor(x: Number) -> int:
    return math.floor(x)


def _ceil(x: Number) -> int:
    return math.ceil(x)


def _float_fn(fn: Callable[..., float], name: str) -> Callable[..., float]:
    def call(*args: Number) -> float:
        try:
            return fn(*(_to_float(a) for a in args))
        except ValueError:
            raise CalcError(f"{name}: the argument is outside the function's domain.") from None

    return call


_FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., Number]]] = {
    "sqrt": (1, 1, _sqrt),
    "log": (1, 2, _log),
    "ln": (1, 1, _ln),
    "log10": (1, 1, lambda x: _log_base(x, math.log10, 10)),
    "log2": (1, 1, lambda x: _log_base(x, math.log2, 2)),
    "exp": (1, 1, _float_fn(math.exp, "exp")),
    "sin": (1, 1, _float_fn(math.sin, "sin")),
    "cos": (1, 1, _float_fn(math.cos, "cos")),
    "tan": (1, 1, _float_fn(math.tan, "tan")),
    "asin": (1, 1, _float_fn(math.asin, "asin")),
    "acos": (1, 1, _float_fn(math.acos, "acos")),
    "atan": (1, 1, _float_fn(math.atan, "atan")),
    "atan2": (2, 2, _float_fn(math.atan2, "atan2")),
    "sinh": (1, 1, _float_fn(math.sinh, "sinh")),
    "cosh": (1, 1, _float_fn(math.cosh, "cosh")),
    "tanh": (1, 1, _float_fn(math.tanh, "tanh")),
    "degrees": (1, 1, _float_fn(math.degrees, "degrees")),
    "radians": (1, 1, _float_fn(math.radians, "radians")),
    "hypot": (1, None, _float_fn(math.hypot, "hypot")),
    "floor": (1, 1, _floor),
    "ceil": (1, 1, _ceil),
    "abs": (1, 1, abs),
    "round": (1, 2, _round),
    "min": (1, None, min),
    "max": (1, None, max),
    "factorial": (1, 1, _factorial),
}


# ---------------------------------------------------------------- formatting
def format_number(x: Number) -> str:
    """Format a result: exact where exact, else at most 15 significant digits, no float noise.

    Args:
        x: An int, Fraction, float or bool.

    Returns:
        The text shown to the model.
    """
    if isinstance(x, bool):
        return "True" if x else "False"
    if isinstance(x, int):
        # str() refuses ints over 4,300 digits (CVE-2020-10735 guard); Decimal converts exactly.
        return str(x) if x.bit_length() < 14_000 else str(Decimal(x))
    if isinstance(x, Fraction):
        if x.denominator == 1:
            return format_number(x.numerator)
        exact = Context(prec=EXACT_DISPLAY_DIGITS)
        value = exact.divide(Decimal(x.numerator), Decimal(x.denominator))
        if not exact.flags[Inexact]:
            return _format_decimal(value, exact)
        rounded = Context(prec=DISPLAY_DIGITS)
        return _format_decimal(
            rounded.divide(Decimal(x.numerator), Decimal(x.denominator)), rounded
        )
    text = format(x, f".{DISPLAY_DIGITS}g")
    return "0" if text == "-0" else text


def _format_decimal(value: Decimal, ctx: Context) -> str:
    value = value.normalize(ctx)
    if -7 <= value.adjusted() < 21:
        text = format(value, "f")
    else:
        text = format(value, "e")
    return "0" if text in ("-0", "0") else text
