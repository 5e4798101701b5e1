"""dars.publishing."""
