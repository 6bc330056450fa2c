"""Helpers shared by the tests: the CLI runner and launcher, fake and broken adapters, the conformance probe.

Test modules import from here (and fixtures from conftest.py), never from each other.
"""
