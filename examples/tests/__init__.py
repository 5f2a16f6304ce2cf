"""Tests for the teaching examples: their returned values, and every script run as `python -m examples.<name>`."""
