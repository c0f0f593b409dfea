"""The AI Gateway constructs, their settings and the environment loader."""
