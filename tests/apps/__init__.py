"""Test applications importable by server subprocesses as ``tests.apps.<module>``."""
