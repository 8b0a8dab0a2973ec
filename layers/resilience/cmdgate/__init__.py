"""cmdgate's shared layer: what every function imports."""
