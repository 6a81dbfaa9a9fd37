"""Parley core: store."""
