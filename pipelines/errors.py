"""The exception types the command line reports in one line: bad input (exit 2) and a
file system that refuses a write (exit 1)."""


class InputError(ValueError):
    """Bad input from the user: a wrong variable, grid, file, config key or option.

    The message is one line that names what is wrong and what would be right. The
    command line prints it as ``error: <message>`` and exits with status 2, without a
    traceback; library callers catch it like any ``ValueError``.
    """


class WriteError(OSError):
    """The file system refused to write an output (full disk, quota, read-only, size limit).

    Not the user's input: the command line prints ``error: <message>`` and exits 1. The
    message names the output and what was kept.
    """

    def __str__(self) -> str:
        return str(self.strerror)
