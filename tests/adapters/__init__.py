"""Adapter tests: provider payloads as fixture files, run by the shared table runner."""
