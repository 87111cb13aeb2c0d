"""Errors of the adaptation package (part of the :class:`spectral.errors.SpectralError` family)."""
from __future__ import annotations

from spectral.errors import SpectralError


class AdaptError(SpectralError, ValueError):
    """An adaptation run cannot start or continue (mismatched pool, unreadable or foreign checkpoint)."""
