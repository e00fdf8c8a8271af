"""Operator tooling: doctor, the development bench and the development PKI.

May import anything; imported only by ``cli`` and tests.
"""
