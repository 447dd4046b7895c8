"""asv benchmarks of flamo (see asv.conf.json and the README's Benchmarks section)."""
