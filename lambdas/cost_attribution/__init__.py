"""Cost attribution: prices the data plane's access-log lines (handler.py)."""
