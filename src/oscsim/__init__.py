"""oscsim: simulate oscillatory metabolic networks and recover their rate constants."""

__version__ = "0.1.0"
