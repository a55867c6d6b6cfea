"""County simulator: ``python -m deploy.simulate`` (``--help`` for the options, ``--small`` for a smoke run).

A county of many relocation communities, each with its own site (docs/sites.md), living through one
month: the roster, a month of declarations from every site through every channel, the recorders'
verification, every community's certification by its leading group, the rankings that follow, and
redemptions at several counters of every community's Love Supermarket. It prints intake throughput,
consumer lag over time, the time from the last MonthCertified to the last ranking event, and where
the CPU went (docs/sites.md, "The county simulator", has what each figure means).

``plan`` decides what happens (pure), ``staff`` does it through the services' HTTP APIs (``client``,
``load``), ``county`` starts the processes, ``watch`` samples lag and CPU, ``run`` goes phase by phase,
``figures`` and ``report`` say what was measured.
"""
