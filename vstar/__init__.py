"""vstar: V-STaR (Hosseini et al., 2024) end to end — sample, check, retrain, verify, select."""

__version__ = "0.1.0"
