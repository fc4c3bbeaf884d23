"""The one error a bad table raises, below every reader so each can raise it."""


class DataError(ValueError):
    """Bad input data, phrased as one line naming the file, column or row."""
