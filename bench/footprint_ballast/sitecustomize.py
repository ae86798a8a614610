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
With ``LRS_BENCH_SEAL_DISCARD=1`` instead, each request's Statements (and
its authority) are sealed by a ``LearnerKeys`` of the worker's own (keys
made in process for the identities it has not met, as if read; forms kept
once "stored", as the service keeps them) and the sealed Statements are
thrown away: the clear Statements are stored.  That is sealing's CPU in the
worker without the longer stored Statement, its ciphertext rows or its keys'
PostgreSQL work.  With ``LRS_BENCH_SEAL_DISCARD=copy``, only the sealing
walk's copies: each Statement copied as the walk copies it, each Agent
replaced by a new form of two dicts, all thrown away (no encoding, no
look-up).  With ``LRS_BENCH_BALLAST_GRADUAL=1`` beside ``LRS_BENCH_BALLAST=N``,
the ballast is built one learner for each Statement prepared (until N),
among the requests' own short-lived objects, as a sealing worker's caches
grow during its first requests, rather than all at once at the first
request: the same objects, laid out in the heap as a sealing worker's are.
Without the variables it does nothing.
"""

import os
import runpy

if os.environ.get("LRS_BENCH_GC_STATS"):
    runpy.run_path(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "gc_stats", "sitecustomize.py"))

_COUNT = int(os.environ.get("LRS_BENCH_BALLAST") or 0)
_SEAL_DISCARD = os.environ.get("LRS_BENCH_SEAL_DISCARD") in ("1", "copy")
_COPY_ONLY = os.environ.get("LRS_BENCH_SEAL_DISCARD") == "copy"
_GRADUAL = os.environ.get("LRS_BENCH_BALLAST_GRADUAL") == "1"
if _COUNT > 0 or _SEAL_DISCARD:
    import importlib.abc
    import importlib.util
    import sys

    _TARGET = "lrs.http.statements"

    def _ballast(count, caches=None):
        """The caches of ``count`` learners, as a sealing worker holds them
        (more learners added to ``caches`` when given)."""
        import secrets

        import msgspec

        from lrs.privacy.data_key import SealKey, new_data_key_cipher
        from lrs.privacy.statement_sealer import KnownForm

        encode = msgspec.json.Encoder(order="sorted").encode
        forms, current, pseudonyms, own = caches or ({}, {}, {}, [])
        for n in range(len(own), len(own) + count):
            agent = {"objectType": "Agent", "mbox": f"mailto:learner{n}@example.org", "name": f"Learner {n}"}
            key = encode(agent)
            pseudonym = secrets.token_hex(16)
            forms[key] = KnownForm("Agent", pseudonym, 1, "v4." + secrets.token_urlsafe(9))
            ident = f"tenant\x00{pseudonym}"
            current[ident] = SealKey(pseudonym, 1, new_data_key_cipher(secrets.token_bytes(32)))
            pseudonyms[f"tenant\x00mbox:mailto:learner{n}@example.org"] = pseudonym
            own.append((key, ident))
        return forms, current, pseudonyms, own

    def _sealer():
        """A worker's own ``LearnerKeys`` whose key reads are answered in process."""
        import math
        import secrets

        from lrs.privacy.data_key import new_data_key_cipher
        from lrs.privacy.master import MasterKey
        from lrs.store.learner_keys import LearnerKeys
        from lrs.store.unconfirmed_keys import identity_key

        keys = LearnerKeys(None, MasterKey(secrets.token_bytes(32)), capacity=250_000)

        async def keys_noted(tenant, idents):
            found = {}
            for ident in idents:
                pseudonym = keys.pseudonym(tenant, ident)
                keys._remember(tenant, pseudonym, 1, new_data_key_cipher(secrets.token_bytes(32)), keys._version)
                found[ident] = keys._current.get(identity_key(tenant, pseudonym))
            return found, {}, math.inf

        keys._keys_noted = keys_noted
        return keys

    def _wrap_sealing(module):
        prepare = module.prepare_statements
        held = []

        def prepare_statements(bodies, **kw):
            if not held:
                held.append(_sealer())
            keys = held[0]
            run = keys.seal_statements("default", bodies, kw["authority"])
            try:
                run.send(None)
            except StopIteration as done:
                keys.stored(done.value)  # its forms reused, as after a commit
            else:  # never: every key is answered in process
                raise AssertionError("sealing awaited")
            return prepare(bodies, **kw)

        module.prepare_statements = prepare_statements

    def _wrap_copies(module):
        from lrs.privacy.statement_agents import seal_statement

        prepare = module.prepare_statements

        def form(agent):
            return {"objectType": agent.get("objectType"), "account": {"homePage": "https://lrs.invalid/pseudonym",
                                                                        "name": "0" * 32}, "sealed": "v4.1.x"}

        def prepare_statements(bodies, **kw):
            form(kw["authority"])
            [seal_statement(body, form) for body in bodies]
            return prepare(bodies, **kw)

        module.prepare_statements = prepare_statements

    def _wrap(module):
        if _COPY_ONLY:
            _wrap_copies(module)
            return
        if _SEAL_DISCARD:
            _wrap_sealing(module)
            return
        import random

        prepare = module.prepare_statements
        held = []

        def prepare_statements(bodies, **kw):
            if not held:
                held.append(_ballast(0 if _GRADUAL else _COUNT))
            forms, current, _, own = held[0]
            if len(own) < _COUNT:  # gradual: one learner more a Statement
                _ballast(min(len(bodies), _COUNT - len(own)), held[0])
            draw = random.randrange
            for _ in range(len(bodies)):
                key, ident = own[draw(len(own))]
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
