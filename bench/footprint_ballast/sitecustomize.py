"""A clear HTTP worker that holds a sealed worker's working set, for
``bench/seal_footprint.py``.

On the path (``PYTHONPATH=bench/footprint_ballast``) with
``LRS_BENCH_BALLAST=N`` set, a process that imports ``lrs.http.statements``
(the HTTP workers) builds, at its first request, the per-learner caches a
sealing worker holds for N learners (``LearnerKeyCache``'s sealed forms by
the Agent's sorted JSON, live keys by identity, pseudonyms by identifier;
the same classes and sizes) and, for each Statement it prepares, looks one
learner up at random in the forms and the keys, as a sealing worker's known
learner path does: the memory a sealing worker holds and touches, without
the sealing.  ``LRS_BENCH_GC_STATS`` is honoured as ``bench/gc_stats`` does.
Without the variables it does nothing.
"""

import os
import runpy

if os.environ.get("LRS_BENCH_GC_STATS"):
    runpy.run_path(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "gc_stats", "sitecustomize.py"))

_COUNT = int(os.environ.get("LRS_BENCH_BALLAST") or 0)
if _COUNT > 0:
    import importlib.abc
    import importlib.util
    import sys

    _TARGET = "lrs.http.statements"

    def _ballast(count):
        """The caches of ``count`` learners, as a sealing worker holds them."""
        import secrets

        import msgspec

        from lrs.privacy.data_key import SealKey, new_data_key_cipher
        from lrs.privacy.statement_sealer import KnownForm

        encode = msgspec.json.Encoder(order="sorted").encode
        forms, current, pseudonyms, own = {}, {}, {}, []
        for n in range(count):
            agent = {"objectType": "Agent", "mbox": f"mailto:learner{n}@example.org", "name": f"Learner {n}"}
            key = encode(agent)
            pseudonym = secrets.token_hex(16)
            forms[key] = KnownForm("Agent", pseudonym, 1, "v4." + secrets.token_urlsafe(9))
            ident = f"tenant\x00{pseudonym}"
            current[ident] = SealKey(pseudonym, 1, new_data_key_cipher(secrets.token_bytes(32)))
            pseudonyms[f"tenant\x00mbox:mailto:learner{n}@example.org"] = pseudonym
            own.append((key, ident))
        return forms, current, pseudonyms, own

    def _wrap(module):
        import random

        prepare = module.prepare_statements
        held = []

        def prepare_statements(bodies, **kw):
            if not held:
                held.append(_ballast(_COUNT))
            forms, current, _, own = held[0]
            draw = random.randrange
            for _ in range(len(bodies)):
                key, ident = own[draw(_COUNT)]
                form = forms.get(key)
                if form is not None and current.get(ident) is None:
                    raise AssertionError(form.pseudonym)
            return prepare(bodies, **kw)

        module.prepare_statements = prepare_statements

    class _Loader(importlib.abc.Loader):
        def __init__(self, inner):
            self._inner = inner

        def create_module(self, spec):
            return self._inner.create_module(spec)

        def exec_module(self, module):
            self._inner.exec_module(module)
            _wrap(module)

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != _TARGET:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
            return spec

    sys.meta_path.insert(0, _Finder())
