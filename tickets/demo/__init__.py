"""The demo desk: a script of customers and conversations (scenarios) and its replay through the services."""
