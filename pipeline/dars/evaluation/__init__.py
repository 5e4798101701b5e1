"""dars.evaluation."""
