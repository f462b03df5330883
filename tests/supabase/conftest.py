from tests.sandbox.conftest import crm  # noqa: F401  (the shared data set fixture)
