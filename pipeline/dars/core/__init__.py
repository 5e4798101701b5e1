"""dars.core."""
