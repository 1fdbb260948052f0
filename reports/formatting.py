"""Number and value formatting for the report: one place decides how a metric, a change,
an interval, a p-value or an arbitrary manifest value is written, so every table in the
page reads the same way. Functions return plain strings; the template escapes them.
"""

from __future__ import annotations

import json
from typing import Any

DASH = "—"


def num(value: float | None, digits: int = 3) -> str:
    """A metric with fixed decimals, or a dash when absent.

    >>> num(0.77), num(None), num(1.23456, 2)
    ('0.770', '—', '1.23')
    """
    return DASH if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 3) -> str:
    """A change with an explicit sign; the minus is a real minus sign.

    >>> signed(0.035), signed(-0.1), signed(0.0)
    ('+0.035', '−0.100', '+0.000')
    """
    if value is None:
        return DASH
    text = f"{value:+.{digits}f}"
    return text.replace("-", "−")


def interval(pair: tuple[float, float] | list[float] | None, digits: int = 3, *, sign: bool = False) -> str:
    """A closed interval such as ``[0.709, 0.823]``.

    >>> interval([0.709, 0.8231]), interval((-0.01, 0.02), sign=True), interval(None)
    ('[0.709, 0.823]', '[−0.010, +0.020]', '')
    """
    if pair is None:
        return ""
    fmt = signed if sign else num
    return f"[{fmt(pair[0], digits)}, {fmt(pair[1], digits)}]"


def p_value(p: float) -> str:
    """A p-value: three decimals, or an upper bound when tiny.

    >>> p_value(0.03857), p_value(0.00001), p_value(1.0)
    ('p = 0.039', 'p < 0.001', 'p = 1.000')
    """
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def percent(value: float, digits: int = 1) -> str:
    """A fraction as a percentage.

    >>> percent(0.6667)
    '66.7%'
    """
    return f"{100 * value:.{digits}f}%"


def count(value: int | None) -> str:
    """An integer with thousands separators.

    >>> count(25000), count(None)
    ('25,000', '—')
    """
    return DASH if value is None else f"{value:,}"


def parameters(n: int | None) -> str:
    """A parameter count in thousands, millions or billions.

    >>> parameters(124439808), parameters(1_500_000_000), parameters(45632), parameters(512)
    ('124.4M', '1.50B', '45.6K', '512')
    """
    if n is None:
        return DASH
    for scale, suffix, digits in ((1e9, "B", 2), (1e6, "M", 1), (1e3, "K", 1)):
        if n >= scale:
            return f"{n / scale:.{digits}f}{suffix}"
    return str(n)


def value(v: Any) -> str:
    """Any JSON value from a results file, written compactly for the manifest.

    Strings in lists are quoted so leading spaces (``" positive"``) stay visible.

    >>> value(None), value(True), value(0.123456), value(12345), value([" a", "b"]), value({"x": [1]})
    ('—', 'yes', '0.1235', '12,345', '" a", "b"', 'x: [1]')
    """
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(json.dumps(x, ensure_ascii=False) if isinstance(x, str) else value(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {json.dumps(x, ensure_ascii=False)}" for k, x in v.items())
    return str(v)


def short_prompt(text: str, keep: int = 300) -> str:
    """A long prompt (few-shot prompts hold their demonstrations) cut to its first and last characters.

    >>> short_prompt("Review: {text}"), short_prompt("a" * 10 + "b" * 30 + "c" * 10, keep=10)
    ('Review: {text}', 'aaaaaaaaaa\\n[… 30 characters omitted …]\\ncccccccccc')
    """
    if len(text) <= 2 * keep + 20:  # cutting would save almost nothing
        return text
    return f"{text[:keep]}\n[… {len(text) - 2 * keep:,} characters omitted …]\n{text[-keep:]}"


def short_hash(text: str | None, keep: int = 12) -> str:
    """A content hash or revision cut to a readable prefix.

    >>> short_hash("sha256:0123456789abcdef0123"), short_hash(None)
    ('sha256:0123456789ab', '—')
    """
    if not text:
        return DASH
    algo, _, digest = text.rpartition(":")
    return f"{algo}:{digest[:keep]}" if algo else digest[:keep]
