"""Configuration: the frozen model (``model``), the YAML loader that remembers
where every node came from (``loader``), the validator (``validate``) and
``load.load(paths)``, which turns files into a ``model.Config``; see
``docs/config.md`` for the format.

This package's ``__init__`` imports nothing, so that steering policies can
use the model and the validator's readers without loading the validator.
"""
