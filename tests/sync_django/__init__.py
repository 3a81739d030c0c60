"""A real Django 5.2 project (SQLite) that uses bridge's sync helpers, served by real servers."""
