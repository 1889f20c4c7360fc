"""promptgauge: score prompt and model variants on curated datasets, compare them, gate promotion."""

__version__ = "0.1.0"
