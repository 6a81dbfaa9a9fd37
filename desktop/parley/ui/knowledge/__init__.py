"""Parley UI: knowledge."""
