"""The one error type of the evaluation: bad input (a missing file, a wrong checkpoint, mismatching data).

``main_linear.py`` turns it into one line and exit code 2. Imports nothing of the package.
"""


class EvalInputError(ValueError):
    """Bad input to the evaluation (missing file, wrong checkpoint, mismatching data)."""
