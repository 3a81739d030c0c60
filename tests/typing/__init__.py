"""Type-checking test cases (typeshed style): mypy checks these files, pytest never runs them.

Each ``check_*.py`` holds code a user writes. A line that must be a type error carries
``# type: ignore[code]``; mypy's ``warn_unused_ignores`` (on under ``strict``) fails the
check when that error goes away, and any other error fails it too. ``assert_type`` pins
the types users read back.
"""
