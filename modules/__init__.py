"""The AI Gateway's constructs, one per concern, wired by modules/stack.py
through typed outputs and named grants (modules/grants.py)."""
