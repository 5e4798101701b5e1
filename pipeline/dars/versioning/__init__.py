"""Dataset versions that explain themselves: `dars diff OLD NEW` and the card's changelog.

* `sources`: load one dataset version (a git revision read through `dvc.api`, a local
  `publish/` folder, or a Hub dataset id@revision) into a `Version`.
* `compare`: the diff of two versions (shape, labels with a per-pair test and
  Benjamini-Hochberg FDR control, decisions, splits, routers).
* `report`: the diff as Markdown, and the card's "Changes since <version>" section.
"""
