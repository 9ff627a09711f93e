"""Finding Ray and the cluster the Ray engine runs on.

Ray is an optional extra: nothing outside the `ray_*` modules imports it, and those import it
through `require_ray`, so a missing install is one actionable message, not a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from clipsearch.errors import ConfigError

INSTALL_HINT = "pip install 'clipsearch[ray]'"
# Passed to workers on a remote cluster (a local one inherits the driver's environment anyway).
_FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")
_FORWARDED_PREFIXES = ("CLIPSEARCH_",)


def require_ray():
    """The `ray` module with Ray Data, or a ConfigError saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(
            f"--engine ray needs Ray, which is not installed ({exc}); install it with {INSTALL_HINT} "
            f"(or pip install 'ray[data]'), or leave out --engine ray to index on this machine"
        ) from exc
    return ray


@dataclass(frozen=True)
class Resources:
    """What the cluster offers, for choosing defaults."""

    cpus: float
    gpus: float


def cluster_resources() -> Resources:
    ray = require_ray()
    total = ray.cluster_resources()
    return Resources(cpus=float(total.get("CPU", 0)), gpus=float(total.get("GPU", 0)))


def worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _FORWARDED_ENV or k.startswith(_FORWARDED_PREFIXES)}


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None):
    """Join the cluster at `address` ("auto", "ray://host:10001") or start a local one, for an entry point.

    A Ray session is process-wide state, so only entry points call this. A session that was
    already up (a notebook, a test) is used as it is and left running.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield
        return
    kwargs: dict = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,  # workers' own logs stay in the session folder; errors still reach us
        "runtime_env": {"env_vars": worker_env()},
    }
    if address:
        kwargs["address"] = address
    elif num_cpus:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: {exc}; start it with `ray start --head` "
            f"or pass --address with its address"
        ) from exc
    quiet_ray_data()
    try:
        yield
    finally:
        ray.shutdown()


def quiet_ray_data() -> None:
    """Ray Data's own progress bars and plan logs off: the engine shows one bar like the local one."""
    ray = require_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
