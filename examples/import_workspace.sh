#!/bin/sh
# train -> evaluate -> card on a workspace `dars import` wrote: examples/import_workspace.sh OUT
# (run from the repository root; TEMPLATE overrides the card template)
set -e
W=$1
TEMPLATE=${TEMPLATE:-dataset_card.md}
D=$W/data
dars train --params $W/params.yaml --labels $D/labels.parquet --queries $D/queries.parquet \
  --splits $D/splits.parquet --outcomes $D/outcomes --out-dir $W/models
dars evaluate --params $W/params.yaml --labels $D/labels.parquet --queries $D/queries.parquet \
  --splits $D/splits.parquet --models-dir $W/models --metrics $W/metrics/routers.json \
  --table $W/metrics/routers.md --plots-dir $W/plots --outcomes $D/outcomes \
  --headline $W/metrics/routers_headline.json
dars card --params $W/params.yaml --template $TEMPLATE --queries $D/queries.parquet \
  --labels $D/labels.parquet --splits $D/splits.parquet --variants $D/variants.parquet \
  --generations $D/generations --outcomes $D/outcomes --validation $W/reports/validation.json \
  --models-dir $W/models --router-metrics $W/metrics/routers.json --no-lock --out $W/publish
