"""The portrait path: plates of people who never sat in a light stage (automatic mattes, face
landmarks). MediaPipe (the ``portrait`` extra; its models ship inside its wheel) is imported
lazily and never downloads anything."""

from __future__ import annotations

from types import ModuleType

from ..errors import RelitError


def mediapipe() -> ModuleType:
    """The mediapipe module, or a clear error naming the fix when the extra is not installed."""
    try:
        import mediapipe as mp
    except ImportError as e:
        raise RelitError(f"the portrait path (automatic mattes, face landmarks) needs MediaPipe ({e}): "
                         "pip install 'relit[portrait]', or give the plate a matte with --matte FILE") from None
    return mp
