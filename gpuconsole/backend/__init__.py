"""Headless backend: Docker hosts, GPU sources, launches. Never imports Textual or Rich.

Everything here is plain Python so it can be driven by the CLI, the TUI or a test alike.
"""
