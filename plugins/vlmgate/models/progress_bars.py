"""Third-party progress bars off while vlmgate loads a model; their warnings stay on.

transformers draws a "Loading weights" bar on stderr for every ``from_pretrained``, and
huggingface_hub one per file it reads; in a gating run that is one bar per model load,
in every xdist worker, between pytest's own output and vlmgate's progress. They say
nothing a user needs: vlmgate turns every weight-loading problem (missing, unexpected or
mis-shaped weights) into a load error of its own (``models.checkpoint``). Only the bars
go: the libraries' loggers keep their levels, so their warnings still reach the user.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def third_party_bars_off() -> Iterator[None]:
    """transformers' and huggingface_hub's progress bars off inside the block, as they were after it."""
    from huggingface_hub import utils as hub
    from transformers.utils import logging as hf_logging

    transformers_on = hf_logging.is_progress_bar_enabled()
    hub_off = hub.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    hub.disable_progress_bars()
    try:
        yield
    finally:
        if transformers_on:
            hf_logging.enable_progress_bar()
        if not hub_off:
            hub.enable_progress_bars()
