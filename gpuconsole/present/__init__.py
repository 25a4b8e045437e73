"""Pure presentation: how values read (sizes, percents, N/A) for the CLI and the console alike."""
