"""``openai:URL?model=NAME`` — a model behind vLLM or any OpenAI-compatible server.

Gates a checkpoint where it is deployed: the engine's batches become chat requests to the
server (``client``: httpx, bounded concurrency, timeouts, retries with backoff), scored in
one of three tiers chosen from what the server offers (``tiers``): ``exact`` (vLLM's prompt
log-probs: the ``hf:`` option log-likelihood, computed by the server), ``first_token``
(generated-token log-probs: approximate) or ``answer`` (a parsed greedy reply: a choice,
no likelihood). The spec's parameters are in ``config``; loading, identity and the
``scoring`` / ``capabilities`` / ``cacheable`` attributes in ``adapter``.

    pytest robustness_tests --vlmgate-model 'openai:http://127.0.0.1:8000/v1?model=NAME&revision=SHA'

The API key comes from ``VLMGATE_OPENAI_API_KEY`` (else ``OPENAI_API_KEY``), never the spec.
"""

from vlmgate.models.served.adapter import TIER_CAPABILITIES, OpenAIServedAdapter, load_served_model
from vlmgate.models.served.config import TIERS, ServedSpec, parse_spec

__all__ = ["TIERS", "TIER_CAPABILITIES", "OpenAIServedAdapter", "ServedSpec", "load_served_model", "parse_spec"]
