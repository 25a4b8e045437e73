"""Hosts: the machine an engine runs on (local or over SSH) with its engine and GPU source."""
