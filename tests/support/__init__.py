"""The one home of the tests' helpers (plain modules, importable from any test folder and from bench/):
databases (``db``), the comments API in a thread (``api``), fault injection over ASGI (``faults``),
comment and attachment builders, staged tables, and running the pipeline as a real process (``pipeline``).
The test servers themselves are a separate distribution (``testservers/``)."""
