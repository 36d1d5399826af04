"""The ``qac`` subcommands behind :mod:`qac.cli`, one module each.

- :mod:`qac.commands.train`, :mod:`qac.commands.evaluate`, :mod:`qac.commands.calibrate`,
  :mod:`qac.commands.info`: ``add_parser(sub)`` adds the subcommand, ``run(args)`` runs it.
- :mod:`qac.commands.options`: argument types and the options several subcommands share.
- :mod:`qac.commands.inputs`: reading configs, checkpoints and datasets with one-line errors.
"""
