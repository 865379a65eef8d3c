"""The composition root: the ``segops`` command line, its terminal output, the demo and the
benchmark. The only package that wires the use cases, the Slack transport and the worker
together; nothing imports it.
"""
