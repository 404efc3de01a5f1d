"""Admin use cases: validate, authorize, mutate, audit and bump the configuration version, all in
one transaction. The admin API, the console and the CLI all call these; none writes tables itself.
"""
