"""``bestofn serve``: the method behind the OpenAI chat-completions API, batched across requests.

A front door over the same steps (:mod:`bestofn.methods`, ``prompts``, ``grading``, ``prm``, ``selection``), not
a second implementation of them:

- ``settings``   the server's own settings (:class:`ServeConfig`), which generate its flags
- ``batching``   the models behind two lanes (generator, PRM) that merge concurrent requests' calls; tickets
                 that cancel a request's work or cut it at its deadline (``cancel``: the transformers side)
- ``answer``     one request: its config, prompt, the method's solutions, answers, rewards and the choice
- ``app``        FastAPI routes, the OpenAI request/response/chunk shapes and errors, uvicorn with a drain
- ``ray_serve``  the same app as K Ray Serve replicas behind one endpoint
"""

from .settings import ServeConfig

__all__ = ["ServeConfig"]
