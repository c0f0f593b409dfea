"""Operational commands: state bootstrap and the local AWS emulator."""
