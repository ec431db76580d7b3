"""Adapters for agent frameworks: ``rem_db.integrations.langchain``."""
