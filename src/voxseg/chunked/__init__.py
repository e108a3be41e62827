"""Volumes larger than memory: the segmentation recipe run block by block on Dask.

:func:`segment_chunked` gives exactly what :func:`voxseg.segmentation.segment`
gives in memory (the same labels voxel for voxel, the same threshold,
diameter and resolved pipeline, the same table), holding only blocks, the
crops of single objects and small per-component tables at any time.
:func:`segment_file_chunked` is :func:`voxseg.workflow.segment_file` for
such volumes: labels as OME-Zarr, table, summary, pipeline.

How the answer stays exact: global decisions (percentiles, histogram,
threshold, component sizes, diameter) come from exact reductions over the
blocks; connected components (of the mask and of the background, for hole
filling) are stitched across block faces; the distance map is computed per
block with a halo that is checked to be wide enough; and every connected
component is declumped whole, on the same crop as in memory. See
:mod:`voxseg.chunked._engine`.
"""

from ._api import ChunkedResult, segment_chunked
from ._workflow import segment_file_chunked

__all__ = ["segment_chunked", "segment_file_chunked", "ChunkedResult"]
