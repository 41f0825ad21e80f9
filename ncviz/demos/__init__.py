"""The bundled demo runs: the catalog the dashboard reads (:mod:`ncviz.demos.catalog`) apart from
the code that trains them (``classification``, ``environments``, ``language``; ``ncviz demo``
runs :func:`ncviz.demos.build.make_demo`)."""
