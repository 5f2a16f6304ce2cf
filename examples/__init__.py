"""Short, runnable teaching examples for TF2 topics that have no natural home in the projects.

Each module reads top to bottom, keeps its demonstrations in small functions that return values, and runs with
`python -m examples.<name>` from the repository root.
"""
