"""Gather: everything a phase learns about the target, as an ``Evidence`` bundle.

The environment seam (``environment.py``: live GCP, the local sandbox, recorded evidence) is
injected here and only here; ``collect.py`` runs every control-plane read (``gcp/``), probe
(``probes/``) and metric query at once, each with a deadline, and never raises for a network
outcome; ``golden_path.py`` walks phase 3's user journey. May use the domain model, ``gcp``,
``probes`` and ``util``; never ``checks``, ``remediate`` or ``render`` (gather does not judge).
"""
