"""The identifiability ceiling (pure science); `python -m oscsim.oracle` is its command line."""
from .estimate import least_squares_k, oracle, structured_estimate

__all__ = ["least_squares_k", "oracle", "structured_estimate"]
