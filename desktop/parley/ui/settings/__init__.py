"""Parley UI: settings."""
