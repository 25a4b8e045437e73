"""Headless monitoring: one ``HostMonitor`` per host (its containers and its GPUs, joined on that
host), a ``Fleet`` of them, and the plain events they emit. No Textual: the UI turns the events
into messages, the CLI and benchmarks can consume them directly."""
