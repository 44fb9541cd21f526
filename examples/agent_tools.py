"""Tools for examples/agent.lmp: a unit converter the ReAct agent calls.

Plain functions with typed parameters; lmpc imports them by path
(``agent_tools:convert``) from the folder of the ``.lmp`` file.
"""

from __future__ import annotations

# Factors to one base unit per dimension (metre, kilogram, litre, second).
FACTORS: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001), "cm": ("length", 0.01), "m": ("length", 1.0),
    "km": ("length", 1000.0), "in": ("length", 0.0254), "ft": ("length", 0.3048),
    "yd": ("length", 0.9144), "mi": ("length", 1609.344),
    "g": ("mass", 0.001), "kg": ("mass", 1.0), "lb": ("mass", 0.45359237),
    "oz": ("mass", 0.028349523125),
    "ml": ("volume", 0.001), "l": ("volume", 1.0), "gal": ("volume", 3.785411784),
    "s": ("time", 1.0), "min": ("time", 60.0), "h": ("time", 3600.0), "day": ("time", 86400.0),
}


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert ``value`` between units of the same kind, e.g. convert(3, "km", "mi").

    Temperatures use "c" and "f". The result is rounded to 4 decimals.

    >>> convert(1, "mi", "km")
    1.6093
    >>> convert(100, "c", "f")
    212.0
    """
    src, dst = from_unit.strip().lower(), to_unit.strip().lower()
    if {src, dst} <= {"c", "f"}:
        celsius = value if src == "c" else (value - 32) * 5 / 9
        return round(celsius if dst == "c" else celsius * 9 / 5 + 32, 4)
    if src not in FACTORS or dst not in FACTORS:
        unknown = src if src not in FACTORS else dst
        raise ValueError(f"unknown unit {unknown!r}; known: {', '.join(FACTORS)}, c, f")
    (kind_a, fa), (kind_b, fb) = FACTORS[src], FACTORS[dst]
    if kind_a != kind_b:
        raise ValueError(f"cannot convert {kind_a} ({src}) to {kind_b} ({dst})")
    return round(value * fa / fb, 4)
