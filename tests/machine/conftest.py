from machine_harness import machine_stack  # noqa: F401  (fixture)
