"""Experiments (need the ``experiments`` extra)."""
