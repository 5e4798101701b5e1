"""dars.stages."""
