"""Settings: the config file (hosts, intervals, read-only), launch profiles (atomic, 0600)."""
