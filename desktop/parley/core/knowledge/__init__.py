"""Parley core: knowledge."""
