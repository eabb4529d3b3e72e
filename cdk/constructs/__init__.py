"""Lectern's CDK constructs.

This package is `cdk.constructs`: import it as such from the repository root (`python -m cdk.app`). Run from
inside cdk/ (`python app.py`), the folder would shadow the `constructs` library.
"""
