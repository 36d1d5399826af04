"""Performance benchmarks of qac-bench (not part of the test suite's pass/fail).

``python -m benchmarks`` runs the measurements of the performance issue and writes
``results/benchmarks/<device>/benchmarks.{json,md}``; ``pytest benchmarks/ --benchmark-only``
runs the pytest-benchmark micro-benchmarks. SpikingJelly comparisons need the ``bench`` extra
(``pip install -e .[bench]``).
"""
