"""anyprec golden model: the single numeric truth (docs/arithmetic.md).

``arith`` holds the integer arithmetic; the training and export modules build on it.
"""
