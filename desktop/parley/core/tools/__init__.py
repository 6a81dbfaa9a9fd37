"""Parley core: tools."""
