"""Pure domain code: money, contracts that cross the workflow boundary, amount and risk rules.

Everything here is deterministic and free of I/O, so the workflow sandbox can load it.
"""
