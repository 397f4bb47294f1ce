"""Numbers and tables as people read them in a report: no scientific notation, money in
m or bn USD, markdown tables."""

import numpy as np
import pandas as pd


def format_number(value: float, digits: int = 3) -> str:
    """A number as people read it, never in scientific notation: thousands with
    separators (``2,514``, ``4,000,000``), smaller values to ``digits`` significant
    digits (``0.164``, ``12.3``), values that round to zero as ``0``, NaN as ``n/a``."""
    if not np.isfinite(value):
        return "n/a" if np.isnan(value) else ("∞" if value > 0 else "−∞")
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    if abs(value) < 0.5 * 10 ** -(digits + 1):
        return "0"
    decimals = digits - 1 - int(np.floor(np.log10(abs(value))))
    return f"{value:.{max(decimals, 0)}f}"


def markdown_table(frame: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> str:
    """A markdown table of ``columns`` (name -> header) of ``frame``; numbers through
    ``format_number``, flags as yes/no."""
    head = "| " + " | ".join(columns.values()) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, (bool, np.bool_)):
                cells.append("yes" if value else "no")
            else:
                cells.append(format_number(value, digits) if isinstance(value, (float, np.floating)) else str(value))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def format_usd(value: float) -> str:
    """USD as people write it: ``0.4 bn USD``, ``46 m USD``, ``9,500 USD``; NaN as ``n/a``."""
    if not np.isfinite(value):
        return "n/a"
    for scale, unit in ((1e9, "bn"), (1e6, "m")):
        if abs(value) >= scale:
            return f"{format_number(value / scale, 2)} {unit} USD"
    return f"{format_number(value)} USD"
