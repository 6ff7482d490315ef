"""Lines for tests/conftest.py that enable the Wan simulator's pytest fixtures.

Add them to the top-level ``tests/conftest.py`` (pytest only honours ``pytest_plugins`` there).
"""

pytest_plugins = ["airflow_provider_wan.simulator.pytest_plugin"]
