"""Importing this module runs :func:`asyppo.integrations.verl.register` (verl's registries).

For verl's ``VERL_USE_EXTERNAL_MODULES`` environment variable: ``import verl`` imports the
modules it names, so with ``VERL_USE_EXTERNAL_MODULES=asyppo.integrations.verl_register`` every
verl process (driver and Ray workers, which inherit the environment) has asyppo's estimators and
policy loss registered before its config is read.
"""

from __future__ import annotations

from asyppo.integrations.verl import register

register()
