"""Choose an embedder by name: the registry of implementations and the factory.

It lives beside the implementations, not in ``base.py`` with the protocol they
implement, so no import circle forms (as ``memex.storage.open`` beside
``memex.storage.base``). Each implementation is imported only when it is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memex.errors import ConfigError

if TYPE_CHECKING:
    from memex.embedders.base import Embedder
    from memex.settings import Settings

EMBEDDERS = ("wordllama", "minilm", "openai")


def make_embedder(settings: Settings) -> Embedder:
    """Build the embedder ``settings.embedder`` names."""
    name = settings.embedder.strip().lower()
    if name == "wordllama":
        from memex.embedders.wordllama import WordLlamaEmbedder

        return WordLlamaEmbedder()
    if name == "minilm":
        from memex.embedders.minilm import MiniLMEmbedder

        return MiniLMEmbedder()
    if name == "openai":
        from memex.embedders.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout,
        )
    raise ConfigError(
        f"unknown embedder {settings.embedder!r}; choose one of {', '.join(EMBEDDERS)}"
    )
