"""GPU accounting: who used which GPUs, how much, and who sat on GPUs without using them.

``meter`` turns each GPU sample into intervals (energy, GPU time, each container's share);
``store`` keeps them in SQLite (raw for a day, then one row a minute); ``recorder`` runs the
host monitors headless and writes what they see; ``report`` sums the store back into usage rows;
``metrics`` serves the live figures to Prometheus.
"""
