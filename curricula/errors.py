"""One error hierarchy: every error the library raises for bad input or a bad state derives from ``CurriculaError``.

Each message names what is wrong and how to fix it; the command line prints it without a traceback (exit code 2).
``CurriculaError`` subclasses ``ValueError`` so code written against the older per-module ``ValueError`` subclasses
keeps working. Modules define their own subclasses next to the code that raises them (``PlanError`` in the plan,
``MixingError`` in the mixer, ...); the cross-cutting ones live here.
"""

from __future__ import annotations


class CurriculaError(ValueError):
    """Base of every curricula error; the message says what is wrong and what to do."""


class ConfigError(CurriculaError):
    """Arguments or a recipe that conflict, are ignored, or cannot be parsed (the message names the flag or key)."""


class RunFolderError(CurriculaError):
    """An output folder that belongs to another run, or an artifact that belongs to another run."""


class CheckpointError(CurriculaError):
    """A checkpoint that is missing, incomplete or from another run (the message names a complete one to use)."""


class CorruptFileError(CurriculaError):
    """A file the library wrote earlier cannot be read back (the message names the file and what to do)."""


class MissingFileError(CurriculaError, FileNotFoundError):
    """A file or folder that should be there is not (the message names it and what makes it)."""


class DiskFullError(CurriculaError, OSError):
    """No space left while writing an artifact (the message names the path and the free space)."""


class DivergenceError(CurriculaError, RuntimeError):
    """Training losses became non-finite or exploded (the message says where and which policy stopped the run)."""


class LaunchError(CurriculaError, RuntimeError):
    """A multi-process launch that is not what it says (e.g. several processes requested, one started)."""
