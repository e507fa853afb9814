"""Readers for corpus layouts shared by several tasks (e.g. Speech Commands: superb.ks and
demo.keywords)."""
