"""Tests of bridge.ratelimit."""
