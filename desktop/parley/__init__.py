"""Parley: a desktop chat assistant."""

__version__ = "0.1.0"
