"""Pure functions from one tool's text output to models: no I/O, one module per source."""
