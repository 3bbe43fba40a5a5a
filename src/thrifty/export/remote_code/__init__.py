"""Source files that ``thrifty export --remote-code`` copies verbatim into an export folder.

``configuration_thrifty.py`` and ``modeling_thrifty.py`` are loaded by ``transformers`` with
``trust_remote_code=True``; they import only torch and transformers, never thrifty, and thrifty
never imports them (so thrifty itself does not need transformers).
"""
