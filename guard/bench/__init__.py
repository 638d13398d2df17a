"""Every benchmark behind ``guardctl bench``, each measuring its baseline in the same run.

``engine`` (our engine against the eql library, :mod:`guard.bench.baseline`), ``runtimes``,
``kernel``, ``agent``, ``audit``, ``dfa`` and ``parse``; :mod:`guard.bench.synth` is the one
synthetic rule and event generator they and the tests share.
"""
