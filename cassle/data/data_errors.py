"""The errors of users' data: every message names the file (and the list line where there is one)."""


class DataError(ValueError):
    """Bad data (layout, list line, label, image); the message names the file."""


class ImageDecodeError(DataError):
    """An image that cannot be read at training time; the message names the file.

    Takes a single message argument, so a DataLoader worker can re-raise it in the main process.
    """
