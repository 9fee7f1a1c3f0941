"""What tests and benchmarks share that no shipped command needs: stand-ins and fixtures."""
