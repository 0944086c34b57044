"""Benchmarks of PiCloud against same-run ceilings and peers (`make bench`)."""
