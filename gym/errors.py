"""Errors the gym raises for things that retrying cannot fix."""

from __future__ import annotations


class GymError(Exception):
    """A permanent failure with a message meant for a person (or a policy) to act on."""


class BadRepository(GymError):
    """The repository or ref does not exist or cannot be read."""


class PatchRefused(GymError):
    """A patch tried to write somewhere it must not; nothing was written."""


class PatchDoesNotApply(GymError):
    """A patch does not fit the files; the message names the file and hunk."""


class DeliveryConflict(GymError):
    """The delivery branch already exists in the target and holds something else."""
