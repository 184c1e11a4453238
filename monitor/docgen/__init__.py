"""The generated parts of the documentation (``docs/``), from the code they describe.

Module map:

* ``regions``: marked regions of a Markdown page, the only place generated text goes;
* ``config_reference``: one table per section of ``monitor.yaml``, from the pydantic models;
* ``metrics_reference``: the metrics table, from a registry the service filled;
* ``__main__``: ``python -m monitor.docgen [--check]`` writes them (or says which are stale).
"""
