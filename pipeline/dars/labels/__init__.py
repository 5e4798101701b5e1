"""dars.labels: from scored outcomes to one capability distribution per (query, model)."""
