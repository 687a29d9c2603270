"""The one validator of features: the same rules for every way data reaches a model.

``tabops validate``, training tables, API records, batch files and jobs all check values
here, so a row refused by one is refused by all. The rules, per feature of the spec:

- it is present; it may be null (a gap) only when the spec says it is nullable;
- a ``numeric`` value is a finite number, an ``integer`` a whole number within 64 bits
  (``3.0`` is 3), a ``boolean`` one of 0, 1, true and false (``0.0`` and ``1.0`` too);
- a ``categorical`` value is text.

JSON records keep their types: ``"3"`` is text, so it is not a number, and ``true`` is not
a number either. A file's cells are text: a cell that reads as a number counts as one, and
``true``/``false`` (any case) count as flags.

A number outside the training range, or a category never seen in training, is accepted:
new data goes beyond a sample's extremes without being wrong, and refusing it would make a
model unusable as the world drifts. Such values are *noted* (``notes``), for ``tabops
validate`` to report and for monitoring to count; the model treats an unseen category as
none of the known ones.
"""

from tabops.validation.report import ValidationFailure, ValidationReport, validate_frame
from tabops.validation.validator import FeatureValidator, FrameCheck, RowProblem
from tabops.validation.values import check_value

__all__ = [
    "FeatureValidator",
    "FrameCheck",
    "RowProblem",
    "ValidationFailure",
    "ValidationReport",
    "check_value",
    "validate_frame",
]
