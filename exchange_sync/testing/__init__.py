"""Helpers for the project's own tests (plain modules, importable from any test folder)."""
