"""Executors of the sample stage: `local` (in-process, pipeline/dars/stages/sample.py) and `ray`
(Ray Data over a Ray cluster, one engine per worker: ray_data.py)."""
