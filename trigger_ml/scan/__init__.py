"""Design-space scans on Dask: a grid (or list) of overrides over a base model.

``trigger-ml scan SPEC.yaml`` resolves every point of the spec to a model spec
``base@key=value,...`` through :mod:`trigger_ml.config` (so the schema validates it), runs
the pipeline of each valid point as one ``dask.distributed`` task, and writes::

    scans/<name>/points/<config sha256[:16]>.json   one per point, as soon as it finishes
    scans/<name>/points/invalid-<sha256[:16]>.json  points the schema rejected, with the error
    scans/<name>/comparison/                         table.md/csv/json, Pareto plots, roc.png, front.json
    scans/<name>/scan_summary.md, summary.json       ok / skipped / failed points with errors

Each task runs the ordinary cached stages (``runs/``, ``hls_projects/<model>/``). A point
whose result file says ``ok`` for the same configuration hash and stages is skipped on a
rerun; failed points are retried. Result files are written by the client the moment their
task finishes, atomically, so an interrupted scan keeps every finished point.

The engine is a ``LocalCluster`` with one single-threaded worker process per core, or an
existing cluster given by its scheduler address (``--scheduler tcp://host:port``).

The package's modules follow the seams: :mod:`~trigger_ml.scan.spec` (the spec, its points
and their expansion), :mod:`~trigger_ml.scan.run` (the Dask task and the client running the
points) and :mod:`~trigger_ml.scan.summary` (Pareto fronts, comparison, summary).
"""

from trigger_ml.scan.run import (
    NOT_BUILT,
    ScanResult,
    dask_client,
    run_point,
    run_scan,
    scan_dir,
)
from trigger_ml.scan.spec import ScanPoint, ScanSpec, Stages, expand_points, load_scan_spec, resolve_point
from trigger_ml.scan.summary import pareto_fronts, summary_markdown, write_comparison

__all__ = [
    "NOT_BUILT",
    "ScanPoint",
    "ScanResult",
    "ScanSpec",
    "Stages",
    "dask_client",
    "expand_points",
    "load_scan_spec",
    "pareto_fronts",
    "resolve_point",
    "run_point",
    "run_scan",
    "scan_dir",
    "summary_markdown",
    "write_comparison",
]
