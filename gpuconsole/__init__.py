"""gpuconsole: one keyboard-driven screen for containers and GPUs on deep-learning hosts."""

__version__ = "0.1.0"
