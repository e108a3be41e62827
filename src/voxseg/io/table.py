"""Tables of measurements as CSV, without pandas: the commands that only write a table stay light.

:func:`write_csv` writes what ``DataFrame.to_csv(path, index=False,
float_format="%.6g")`` writes for the same columns (floats with six
significant digits, NaN as an empty field, booleans as True/False, text
quoted only where it must be), so that a table written here and one written
by pandas are the same bytes.
"""

from __future__ import annotations

import csv
import math

import numpy as np

__all__ = ["write_csv"]


def _cells(values, float_format):
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return ["" if math.isnan(v) else float_format % v for v in values.tolist()]
    if values.dtype.kind in "biu":
        return [str(v) for v in values.tolist()]
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else
            (float_format % v if isinstance(v, float) else str(v)) for v in values.tolist()]


def write_csv(path, columns, *, float_format="%.6g"):
    """Write `columns` (a mapping of name -> 1-D array, or a DataFrame) to `path` as CSV.

    Parameters
    ----------
    path : str or Path
        The file written (callers write to a temporary name and rename it).
    columns : mapping or pandas.DataFrame
        Columns of equal length, in the order they are written.
    float_format : str
        %-format of floating-point values.

    Examples
    --------
    >>> import io, numpy as np
    >>> out = io.StringIO()
    >>> write_csv(out, {"label": np.array([1, 2]), "volume": np.array([0.5, np.nan]),
    ...                 "touches_border": np.array([True, False])})
    >>> print(out.getvalue(), end="")
    label,volume,touches_border
    1,0.5,True
    2,,False
    """
    names = [str(name) for name in columns]
    cells = [_cells(columns[name], float_format) for name in columns]
    rows = zip(*cells) if cells else iter(())
    handle = path if hasattr(path, "write") else open(path, "w", newline="", encoding="utf-8")
    try:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
    finally:
        if handle is not path:
            handle.close()
