"""DARS: distribution-aware routing supervision dataset builder."""

__version__ = "0.1.0"
