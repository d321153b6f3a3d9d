"""Speed, memory and detection benchmarks; ``make bench`` runs them all."""
