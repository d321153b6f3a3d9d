"""Rating: statistics, representation-space tests, figures and reports over score tables."""
