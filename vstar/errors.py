"""One exception type for bad input: the CLI prints its message and exits with code 2."""


class VstarError(Exception):
    """A user-facing error: a config, data file, checkpoint or resource problem.

    The message names the file, the field or line, and what was expected.
    """
