"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (a name, a path, a config value). Never a bug."""


class DatasetNotFoundError(UserError):
    """A dataset folder could not be resolved under the data root."""


class DataFormatError(UserError):
    """A dataset file (image, list, .mat) is unreadable or malformed."""
