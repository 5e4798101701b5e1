"""Sampling: work units and their checkpoint shards (`units`, `shards`), the request
planner (`requests`), retries and rows (`retries`, `rows`), the executors (`local`, in
process; `ray_data`, one engine per Ray worker) and the strategies (`uniform`,
`adaptive`). The `sample` stage (`dars.stages.sample`) is a thin run() over them."""
