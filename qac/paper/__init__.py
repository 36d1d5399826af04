"""Everything that compares this replication with the paper.

- :mod:`qac.paper.reference`: the paper's numbers (``data/paper_numbers.csv``) and text
  claims (``data/paper_claims.yaml``), typed.
- :mod:`qac.paper.compare`: our results beside every reported number, with a verdict.
- :mod:`qac.paper.claims`: the paper's claims C1-C7 as executable checks on our results, built
  on :mod:`qac.paper.verdicts` (the status / evidence / details skeleton they share);
  :mod:`qac.paper.text_claims`: the statements of ``paper_claims.yaml``.
- :mod:`qac.paper.audit`: the paper's internal consistency.
- :mod:`qac.paper.summary`: ``comparison.{csv,md}``, ``claims.md``, ``audit.md``;
  :mod:`qac.paper.cli`: ``qac paper compare|claims|audit|summary``.
"""
