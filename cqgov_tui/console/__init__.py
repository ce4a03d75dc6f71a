"""View-models of the console: what each pane shows, computed headlessly from a store.

The Textual UI in ``screens/`` only renders these; tests and benchmarks call
them directly. Nothing here imports ``textual``.
"""
