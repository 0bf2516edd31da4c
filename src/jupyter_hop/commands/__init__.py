"""One module per command group; each only parses options, calls the core and prints the result."""
