"""dars.prompting."""
