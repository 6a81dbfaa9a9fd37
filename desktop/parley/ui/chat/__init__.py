"""Parley UI: chat."""
