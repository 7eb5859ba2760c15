"""``bestofn serve --ray [ADDRESS] --replicas K``: the same app as K Ray Serve replicas behind one endpoint.

Each replica is one :class:`~bestofn.serve.app.Server` (its own models, batcher and worker threads) with the
routes of :func:`~bestofn.serve.app.create_app` as its ASGI ingress, so the API is exactly the single-process
one; Ray Serve's HTTP proxy listens on ``--host``/``--port`` and spreads requests over the replicas. A replica
takes one GPU when the device is CUDA, else one CPU. ``--ray`` alone starts a local cluster (shut down on
exit); ``auto`` or an address joins a running one (left running).
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import asdict
from typing import Any

from ..config import BestOfNConfig
from ..errors import BestOfNError, first_line
from .settings import ServeConfig

log = logging.getLogger(__name__)
APP_NAME = "bestofn"


class Replica:
    """One replica: a loaded :class:`Server`, its routes built on the replica (Ray Serve's late-bound ingress)."""

    def __init__(self, config: dict[str, Any], settings: dict[str, Any], models: Any = None):
        from .app import Server

        self.server = Server(BestOfNConfig.from_dict(config), ServeConfig(**settings), models)
        self.server.load()

    def __serve_build_asgi_app__(self) -> Any:
        from .app import create_app

        return create_app(self.server, load=False)


def application(config: BestOfNConfig, settings: ServeConfig, models: Any = None) -> Any:
    """The Ray Serve application: ``settings.replicas`` replicas of :class:`Replica`."""
    from ray import serve

    from ..backends import resolve_device

    gpu = resolve_device(config.device).startswith("cuda")
    deployment = serve.deployment(
        serve.ingress()(Replica), name="bestofn-server", num_replicas=settings.replicas,
        ray_actor_options={"num_gpus": 1} if gpu else {"num_cpus": 1},
        max_ongoing_requests=settings.concurrency + settings.max_queue)
    return deployment.bind(config.to_dict(), asdict(settings), models)


def start(config: BestOfNConfig, settings: ServeConfig, models: Any = None) -> bool:
    """Connect to (or start) the cluster and deploy; returns whether this process started the cluster."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise BestOfNError("--ray needs Ray Serve: pip install 'bestofn[ray]' (or 'ray[serve]')") from None
    address = config.ray_address
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=None if address == "local" else address, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise BestOfNError(f"cannot join the Ray cluster at {address!r} ({first_line(e)}); start one with "
                               f"`ray start --head`, or pass --ray without a value to start a local one") from None
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(application(config, settings, models), name=APP_NAME, route_prefix="/")
    log.info("bestofn serve: %d replicas of %s on http://%s:%d (Ray Serve)", settings.replicas,
             settings.served_model_name or config.generator, settings.host, settings.port)
    return started_here


def stop(started_here: bool) -> None:
    """Take the application down (and the local cluster, if this process started it)."""
    import ray
    from ray import serve

    serve.shutdown()
    if started_here:
        ray.shutdown()


def run_ray_serve(config: BestOfNConfig, settings: ServeConfig, models: Any = None) -> None:
    """Deploy, serve until SIGTERM or Ctrl-C, then shut down."""
    done = threading.Event()
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set()) if on_main else None
    started_here = start(config, settings, models)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop(started_here)
        if on_main:
            signal.signal(signal.SIGTERM, previous)
