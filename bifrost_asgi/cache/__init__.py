"""Response caching with Bifrost's ``semantic_cache`` semantics: one step of the journey (step 5).

    config.py     the plugins entry, parsed once at load
    keys.py       what a request is cached under: its scope (key, user, family, model, provider) and body
    entries.py    an answer as stored bytes, and where direct entries live (memory LRU, Redis)
    semantic.py   embedding a request through the gateway's own embeddings executor
    vectors.py    the vector stores semantic mode searches (memory; SQLite with sqlite-vec,
                  vectors_sqlite.py; Qdrant, vectors_qdrant.py)
    step.py       the journey step: look up before the attempts, keep a complete answer after

Nothing here runs when the plugin is off: the journey checks ``gw.cache`` once.
"""

from __future__ import annotations
