"""One module per command group of the ``fedsurv`` CLI; each coordinator module exposes
``register(app)``, :mod:`~.site` is the ``fedsurv site`` group."""
