"""Adapters that run asyppo's data engine and losses inside other RL stacks.

* :mod:`asyppo.integrations.verl` — drop-in advantage estimators and the AsyPPO policy loss with
  verl's signatures and registries (extra ``verl``); :mod:`asyppo.integrations.verl_register`
  registers them on import, for verl's ``VERL_USE_EXTERNAL_MODULES``.
* :mod:`asyppo.integrations.trl` — a ``GRPOTrainer`` whose advantages come from the engine, and
  the ``GRPOConfig`` -> asyppo key map (extra ``trl``).
* :mod:`asyppo.integrations.padded` — the padded ``[B, L]`` + mask <-> packed layout both use.

Nothing here is imported by ``import asyppo.integrations``; each adapter imports its framework
when it is imported itself. Usage and the tested versions: ``docs/integrations.md``.
"""
