"""The browser app, served by ``ree viz``.

- ``abm.viz.app``: the Solara page (Mesa's SolaraViz, one model per browser session).
- ``abm.viz.controls``: the model class the page builds and its controls (``model_params``).
- ``abm.viz.charts``: the matplotlib figures of a running model.
- ``abm.viz.server``: ``serve(host, port)``, run offline with the ``solara-assets`` package.

Importing this package imports none of them (the CLI stays fast).
"""
