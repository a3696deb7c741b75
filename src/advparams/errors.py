"""Exceptions raised by advparams.

Every error a user can cause (bad files, wrong keys, missing data, unknown names) is an
:class:`AdvParamsError`; the CLI prints it as one line and exits non-zero. Anything else
is a bug.
"""

from __future__ import annotations


class AdvParamsError(Exception):
    """Base class of the errors a user can fix; its message is one complete sentence."""


class UnknownNameError(AdvParamsError, LookupError):
    """A registry was asked for a name it does not hold."""


class ConfigError(AdvParamsError, ValueError):
    """A configuration value or key is invalid."""


class CheckpointError(AdvParamsError):
    """A model checkpoint is missing, truncated, corrupt or inconsistent."""


class KeyFileError(AdvParamsError):
    """A key file is missing, truncated, corrupt or of an unknown format."""


class KeyMismatchError(KeyFileError):
    """A key does not belong to the model it is applied to."""


class PassphraseError(KeyFileError):
    """A sealed key needs a passphrase, or the one given is wrong (or the key was tampered with)."""


class DataError(AdvParamsError):
    """A data set is missing or malformed."""


class OutputExistsError(AdvParamsError, FileExistsError):
    """An output path exists and overwriting was not allowed."""


class UserTableError(AdvParamsError):
    """A user table is missing, corrupt or inconsistent, or names an unknown or duplicate user."""


class TriggerFileError(KeyFileError):
    """A backdoor trigger file is missing, malformed, tampered with or does not fit."""


class FingerprintFileError(KeyFileError):
    """An ownership fingerprint file is missing, unreadable, corrupt or of another format."""


class QueryFileError(KeyFileError):
    """A tracing query file or a file of answers is missing, malformed, tampered with or
    does not fit."""


class LockIncompleteError(AdvParamsError):
    """A lock missed its target accuracy (the command line exits with 4 and writes
    nothing unless ``--allow-partial`` is given)."""

    exit_code = 4
