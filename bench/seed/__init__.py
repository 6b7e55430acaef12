"""``manage.py bench_seed``: a generated desk of up to millions of conversations for the benchmarks.

A development app (not in the product's image): settings install it when ``bench`` is on the path.
``generator`` drives the load, ``conversation`` simulates each conversation with the services'
rules, ``tables`` holds the COPY columns, ``vocabulary`` the sizes and texts.
"""
