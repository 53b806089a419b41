"""Data sets: sources that build `ArrayData`, and the split / standardise / batch pipeline."""

from .arrays import ArrayData
from .module import DataModule, DataSpec, Preprocessing

__all__ = ["ArrayData", "DataModule", "DataSpec", "Preprocessing"]
