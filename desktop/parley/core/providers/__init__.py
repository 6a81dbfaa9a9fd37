"""Parley core: providers."""
