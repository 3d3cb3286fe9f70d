"""Small data sets the repository can generate itself (for tests and README examples)."""
