"""Domain errors raised by relit's core.

Every message names the offending file, field or entry and says how to fix it;
front ends (the CLI, the Blender operators, the worker) report the message as
it is.
"""

from __future__ import annotations


class RelitError(Exception):
    """Base class of every error relit raises on bad input or state."""


class ValidationError(RelitError, ValueError):
    """A JSON contract (LightRig, manifest, job, layout) has a bad field."""


class RelitIOError(RelitError, OSError):
    """A file is missing, unreadable, truncated or of the wrong kind."""


class MissingChannelError(RelitIOError, KeyError):
    """A layer or channel asked for is not in an image file."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ColourError(RelitError):
    """A colour space is unknown to the OpenColorIO config in use."""
