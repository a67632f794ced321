"""The one exception type of the OT core."""


class DeltaError(ValueError):
    """A delta is malformed, too large, or does not fit the document it is applied to.

    ``code`` is a short machine-readable reason ("bad_delta", "too_large",
    "does_not_fit", "not_document"); the message is for humans.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
