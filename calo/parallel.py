"""Run independent tasks serially or on a Dask cluster, in order, with a progress bar.

``calo-predict`` and ``calo-simulate`` split their work into independent tasks (one per file or
per chunk) and hand them to :func:`map_tasks`. Without a client the tasks run one after the
other in this process; with a :class:`distributed.Client` they are submitted to the cluster and
their results come back in the order of the inputs, whatever order they finish in, so a parallel
run returns exactly what a serial one does.

Dask (``pip install "calo[dask]"``) is only imported when a cluster is asked for. The cluster is
either a local one started here (``workers=N``: N single-threaded worker processes) or an
existing one reached by its scheduler address (for example one that dask-jobqueue started on a
batch system).

Examples
--------
>>> map_tasks(pow, [(2, 3), (3, 2)], progress=False)
[8, 9]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from calo.errors import CaloError, ConfigError

__all__ = ["dask_client", "map_tasks"]


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "running on a Dask cluster needs dask.distributed: pip install 'calo[dask]'"
        ) from None
    return distributed


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any | None]:
    """A Dask client for ``workers`` local processes or the cluster at ``scheduler``.

    Parameters
    ----------
    workers:
        Start a local cluster of this many single-threaded worker processes (closed on exit).
    scheduler:
        Address of an existing scheduler (``tcp://host:8786``); the cluster is left running.

    Yields
    ------
    distributed.Client or None
        ``None`` when neither is given (run serially).

    Examples
    --------
    >>> with dask_client() as client:
    ...     print(client)
    None
    """
    if workers is not None and scheduler is not None:
        raise ConfigError("give either --workers (a local cluster) or --scheduler, not both")
    if workers is None and scheduler is None:
        yield None
        return
    distributed = _import_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({type(e).__name__}: {e}); "
                "check the address and that the scheduler is running"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    assert workers is not None
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def map_tasks(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    *,
    client: Any | None = None,
    progress: bool = True,
    desc: str = "tasks",
    unit: str = "task",
) -> list[Any]:
    """``[fn(*a) for a in args]``, serially or on ``client``'s cluster, results in input order.

    A task that raises stops the run: the error is raised here (a :class:`calo.errors.CaloError`
    as it is, anything else wrapped in one that names the task), and the tasks not yet finished
    are cancelled.

    Parameters
    ----------
    fn:
        A picklable function (module level) for a cluster.
    args:
        One argument tuple per task.
    client:
        A :class:`distributed.Client`, or ``None`` to run here.
    progress:
        Show a tqdm bar that advances as tasks finish.
    desc, unit:
        Label and unit of the bar.

    Examples
    --------
    >>> map_tasks(divmod, [(7, 2)], progress=False)
    [(3, 1)]
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=len(args), desc=desc, unit=unit, disable=not progress)
    try:
        if client is None:
            out = []
            for a in args:
                out.append(fn(*a))
                bar.update(1)
            return out
        distributed = _import_distributed()
        futures = [client.submit(fn, *a, pure=False) for a in args]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(args)
        try:
            for fut in distributed.as_completed(futures):
                i = index[fut.key]
                try:
                    results[i] = fut.result()
                except CaloError:
                    raise
                except Exception as e:
                    raise CaloError(
                        f"task {i} ({desc}, arguments {args[i]!r}) failed on the cluster: "
                        f"{type(e).__name__}: {e}"
                    ) from e
                bar.update(1)
        except BaseException:
            client.cancel(futures)
            raise
        return results
    finally:
        bar.close()
