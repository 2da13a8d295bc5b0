"""The one exception type that means "the user's input is wrong"."""


class InputError(ValueError):
    """Bad input from the user: a wrong variable, grid, file, config key or option.

    The message is one line that names what is wrong and what would be right. The
    command line prints it as ``error: <message>`` and exits with status 2, without a
    traceback; library callers catch it like any ``ValueError``.
    """
