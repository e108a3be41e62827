"""Running tasks on Dask: the local threaded scheduler, a LocalCluster or an existing cluster.

The chunked segmentation is a sequence of passes; each pass is a list of
independent tasks (one per block, or per group of components) whose small
results come back to the driver, which makes the global decisions between
passes. This module only submits tasks and reports progress: the
scheduling itself is Dask's.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import ParameterError

__all__ = ["Runner"]


class Runner:
    """Where tasks run.

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        Address of a running ``dask.distributed`` scheduler (``"tcp://host:8786"``)
        or a Client. Default: Dask's local threaded scheduler.
    workers : int, optional
        Start a ``distributed.LocalCluster`` of this many single-threaded
        worker processes for the run (ignored when `scheduler` is given).
    progress : bool, optional
        Progress bars on stderr: ``None`` shows them on a terminal only.
    """

    def __init__(self, scheduler=None, workers=None, progress=None):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ParameterError(f"workers must be a positive integer, got {workers!r}")
        self.scheduler = scheduler
        self.workers = workers
        self.progress = progress
        self.client = None
        self._owned = []

    # -- lifetime -------------------------------------------------------------
    def __enter__(self):
        if self.scheduler is not None or self.workers is not None:
            try:
                from distributed import Client, LocalCluster
            except ImportError:  # pragma: no cover - depends on the installation
                raise ParameterError(
                    "scheduler= and workers= need dask.distributed: pip install 'voxseg[distributed]'") from None
            if self.scheduler is not None:
                if isinstance(self.scheduler, str):
                    try:
                        self.client = Client(self.scheduler, set_as_default=False)
                    except OSError as err:
                        raise ParameterError(f"scheduler {self.scheduler!r}: cannot connect ({err})") from None
                    self._owned.append(self.client)
                else:
                    self.client = self.scheduler
            else:
                cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, dashboard_address=None)
                self.client = Client(cluster, set_as_default=False)
                self._owned += [self.client, cluster]
        return self

    def __exit__(self, *exc):
        for thing in self._owned:
            thing.close()
        self._owned.clear()
        return False

    @property
    def parallelism(self) -> int:
        """How many tasks run at once."""
        if self.client is not None:
            return max(1, sum(self.client.nthreads().values()))
        import dask

        return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)

    @property
    def local(self) -> bool:
        """Whether tasks run in this process (they can share memory with the driver)."""
        return self.client is None

    # -- running --------------------------------------------------------------
    def _bar(self, total, desc):
        from tqdm import tqdm

        disable = {None: None, True: False, False: True}.get(self.progress, None)
        return tqdm(total=total, desc=desc, unit="task", file=sys.stderr, disable=disable, leave=False,
                    dynamic_ncols=True)

    def map(self, func, arguments, *, desc, batch=False):
        """``[func(*args) for args in arguments]``, run as Dask tasks; dask collections in `args` are computed.

        With `batch`, short tasks sent to a distributed cluster go in batches
        (about eight per worker thread), which spares the scheduler most of
        its per-task work.
        """
        import dask

        arguments = list(arguments)
        size = 1
        if batch and self.client is not None:
            size = max(1, len(arguments) // (8 * self.parallelism))
        if size == 1:
            tasks = [dask.delayed(func, pure=False)(*args) for args in arguments]
            return self.compute(tasks, desc=desc)
        groups = [arguments[i:i + size] for i in range(0, len(arguments), size)]
        tasks = [dask.delayed(_batch, pure=False)(func, group) for group in groups]
        return [result for results in self.compute(tasks, desc=desc) for result in results]

    def compute(self, tasks, *, desc):
        """Compute a list of delayed objects, with a progress bar over them."""
        if not tasks:
            return []
        bar = self._bar(len(tasks), desc)
        try:
            if self.client is not None:
                from distributed import as_completed

                futures = self.client.compute(tasks)
                try:
                    for _ in as_completed(futures, loop=self.client.loop):
                        bar.update(1)
                    return self.client.gather(futures)
                except BaseException:
                    self.client.cancel(futures)
                    raise
            import dask

            with _CountKeys({t.key for t in tasks}, bar):
                return list(dask.compute(*tasks, scheduler="threads"))
        finally:
            bar.close()

    @contextlib.contextmanager
    def active(self, desc, total):
        """Make this runner Dask's scheduler inside the block (for ``da.store`` and friends)."""
        import dask

        bar = self._bar(total, desc)
        try:
            if self.client is not None:
                with dask.config.set(scheduler=self.client):
                    yield
            else:
                with dask.config.set(scheduler="threads"), _CountKeys(None, bar, prefix=desc):
                    yield
        finally:
            bar.close()


def _batch(func, group):
    return [func(*args) for args in group]


class _CountKeys:
    """A Dask callback that advances a progress bar when one of `keys` is computed."""

    def __init__(self, keys, bar, prefix=None):
        from dask.callbacks import Callback

        outer = self

        class _Callback(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if outer.keys is None:
                    name = key[0] if isinstance(key, tuple) else key
                    if isinstance(name, str) and name.startswith("voxseg-paint"):
                        outer.bar.update(1)
                elif key in outer.keys:
                    outer.bar.update(1)

        self.keys = keys
        self.bar = bar
        self.callback = _Callback()

    def __enter__(self):
        self.callback.__enter__()
        return self

    def __exit__(self, *exc):
        return self.callback.__exit__(*exc)
