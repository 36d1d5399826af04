"""Tables, figures and captions of the QAC replication (``qac report``).

This package defines nothing itself: import from its modules (``collect``, ``tables``,
``figures``, ``captions``, ``runsummary``, ``_common``, ``cli``; the names below are relative to
:mod:`qac.report`).

Pipeline
--------
1. :func:`collect.collect` reads the ``qac evaluate`` JSON of every trained model
   (``results/<scale>/eval/<dataset>/<arch>/<act>.json``, ``act`` = ``qac-c1`` ... ``qac-c4``
   or ``qcfs-L<L>``) into tidy rows in the reference schema (``qac.paper.reference.COLUMNS``)
   plus ``scale``, ``case`` and ``source`` (the JSON file).  :func:`collect.layer_profiles`
   gives the per-layer T / bits / alpha of every model.
2. :func:`tables.make_table` builds each paper table (our numbers beside the paper's, deltas,
   notes, skipped cells); :func:`tables.write_table` writes ``.csv``, ``.md`` and ``.tex``.
3. :func:`figures.make_figure` draws Fig. 1, Fig. 2/11, Fig. 3 and Figs. 5-10 (PNG 300 dpi +
   PDF).
4. :func:`captions.caption` says what the paper reports for each table/figure.

Which evaluation setting feeds which rows (``M`` = ``main_policy``, default ``aver+aver``)
------------------------------------------------------------------------------------------
=============================  ===========================================================
source                         rows
=============================  ===========================================================
every ``qac-c<case>`` ANN      ``fig2``: ``ann_acc``, ``avg_timesteps``, ``avg_bits``
                               (``case`` = 1..4; case 3's ``inf`` stays ``inf``)
``qac-c4`` setting ``M,cal``   ``table1`` (CIFAR-10) / ``table7`` (CIFAR-100) / ``table2``
                               (ImageNet): ``ann_acc`` (ANN block), ``avg_timesteps``,
                               ``snn_acc``; ``table6``: ``avg_timesteps``, ``snn_acc``;
                               ``table3``: ``snn_acc``, calibration ``base+cal``
``qac-c4`` setting ``M``       ``table3`` ``base``; ``table5`` ``k=1``
``qac-c4`` ``repl+aver``,      ``table4`` with ``alignment`` = the policy (``aver+aver``
``repl+trunc``, ``aver+trunc``, comes from the uncalibrated ``aver+aver`` run, i.e. from
``aver+aver``                   setting ``M`` when ``M`` is ``aver+aver``)
``qac-c4`` ``M,k=K`` (K > 1)   ``table5`` with ``k=K`` (uncalibrated, as the paper's Table 5)
any model, ``M`` and ``M,cal``  ``energy``: ``firing_rate``, ``energy_pj_per_sample``,
                               ``ann_energy_pj_per_sample``; calibration ``base``/``base+cal``
any model, ``aver+aver+aver``  ``exactness``: ``snn_acc`` (alignment ``aver+aver+aver``) and
(the ``,f64`` run if any)       ``ann_acc`` (``ann_acc_float64`` of a float64 run, else
                               ``ann_acc``) - exactly the pair claim C1 checks
``qcfs-L<L>``                   ``table8``: methods ``QCFS`` / ``QCFS+aver`` per T of
                               ``qcfs_sweep`` (``snn_acc``, ``L``, ``T``), and the QCFS ANN
                               as ``ann_acc`` with ``T`` empty
=============================  ===========================================================

Other settings (``v0=``, ``T=``, calibrated k > 1, ...) are not used.  Rows of tables 1-8
have unique reference keys per scale; the extra tables (``fig2``, ``energy``,
``exactness``) hold one row per case with the same key, so feed :func:`collect.reference_rows`
of the frame to :func:`qac.paper.compare.compare` (whose duplicate check does not look at
``case``).
:func:`qac.paper.claims.check_all` takes the whole frame.

Skipped experiments
-------------------
:func:`_common.skipped_rows` normalises ``(experiment, dataset, architecture, reason)`` entries
(a CSV with that header - ``qac.workflow.write_skipped``'s ``artifact,dataset,arch,act,reason``
is accepted too - JSON, tuples or dicts).  ``experiment`` is a table/figure name
(``table4``, ``fig2``, ``figs5_10``, ``fig7``...) or ``*``; ``dataset``/``architecture``
may be ``*``.  Covered cells show ``skipped (reason)`` in tables and a framed "skipped
(reason)" panel in figures - never numbers.

Tables
------
:data:`tables.EXPECTED_COLUMNS` fixes every table's columns; :func:`tables.expected_rows` gives
the row count for a grid (rules in its docstring; summary: tables 3/4/5 one row per (dataset,
architecture) cell of the paper's table plus the grid's cells; table 8 cells x L x 2
methods; tables 1/2/6/7 the paper's literature rows + one ``QAC (paper)`` row per paper
cell + one ``QAC (ours)`` row per cell).  See :mod:`qac.report.tables` for the column
conventions (``X``, ``X_paper``, ``X_delta``, ``status``, ``note``).

CLI
---
::

    qac report collect --scale S --out tidy.csv EVAL.json...
    qac report layers --out layers.csv EVAL.json...
    qac report table --name table1 --tidy tidy.csv [--skipped skipped.csv] \\
        [--note TEXT] --out-prefix results/S/tables/table1
    qac report figure --name fig2 --tidy tidy.csv --layers layers.csv \\
        [--skipped skipped.csv] --out-dir figures/S
    qac report captions --out-dir results/S/captions [--scale S] [--names ...] \\
        [--limit N] [--sweep-limit N]
    qac report caption --name table1
    qac report run-summary --scale S [--results-dir results/S] [--reset] \\
        [--add-log .snakemake/log/RUN.snakemake.log]

``run-summary`` (:mod:`runsummary`, which the Snakefile's hooks call after every successful run)
writes ``results/S/README.md``: total wall time (``wall_time.tsv``), time per stage, headline
numbers and the scale's floors; ``--reset`` first moves ``wall_time.tsv`` aside to start a new
measurement.

Bad input exits with status 2 and one ``qac.report: error: ...`` line.
"""
