"""lockgate's bundled example pipelines (``lockgate server --examples``)."""
